package protocol

// Version is the QQP protocol version carried in the hello frame.
const Version = 1

// Type is the value of a frame's "type" field.
type Type string

// Request types a client may send.
const (
	TypeRegister Type = "register"
	TypeLogin    Type = "login"
	TypeSend     Type = "send"
	TypeAck      Type = "ack"
	TypeOffline  Type = "offline"
	TypeUsers    Type = "users"
	TypeHistory  Type = "history"
	TypeLogout   Type = "logout"
	TypePing     Type = "ping"

	// TypeResume logs in with a resume token (feature "resume").
	TypeResume Type = "resume"

	// qqd's extensions (features "friends", "presence", "typing"; see
	// docs/protocol.md).
	TypeFriendRequest Type = "friend_request"
	TypeFriendAccept  Type = "friend_accept"
	TypeFriendDecline Type = "friend_decline"
	TypeFriendCancel  Type = "friend_cancel"
	TypeFriendRemove  Type = "friend_remove"
	TypeFriends       Type = "friends"
	TypeBlock         Type = "block"
	TypeUnblock       Type = "unblock"
	TypeBlocks        Type = "blocks"
	TypePresence      Type = "presence"
	TypeTyping        Type = "typing"

	// Groups (feature "groups").
	TypeGroupCreate   Type = "group_create"
	TypeGroupSend     Type = "group_send"
	TypeGroupAck      Type = "group_ack"
	TypeGroupSync     Type = "group_sync"
	TypeGroupHistory  Type = "group_history"
	TypeGroups        Type = "groups"
	TypeGroupInfo     Type = "group_info"
	TypeGroupMembers  Type = "group_members"
	TypeGroupRequests Type = "group_requests"
	TypeGroupJoin     Type = "group_join"
	TypeGroupInvite   Type = "group_invite"
	TypeGroupApprove  Type = "group_approve"
	TypeGroupReject   Type = "group_reject"
	TypeGroupLeave    Type = "group_leave"
	TypeGroupKick     Type = "group_kick"
	TypeGroupRole     Type = "group_role"
	TypeGroupTransfer Type = "group_transfer"
	TypeGroupRename   Type = "group_rename"
	TypeGroupMute     Type = "group_mute"
	TypeGroupMuteAll  Type = "group_mute_all"
	TypeGroupSettings Type = "group_settings"
	TypeGroupDissolve Type = "group_dissolve"
)

// Frame types the server writes.
const (
	TypeHello  Type = "hello"
	TypeOK     Type = "ok"
	TypeError  Type = "error"
	TypeMsg    Type = "msg"
	TypeKicked Type = "kicked"
	// TypeNotice is qqd's extension push: an operator's broadcast,
	// {"type":"notice","message":"..."}.
	TypeNotice Type = "notice"
	// Pushes of the friends, presence and typing extensions; TypePresence,
	// TypeTyping and TypeFriendRequest are pushes as well as requests.
	TypeFriendAdded     Type = "friend_added"
	TypeFriendRemoved   Type = "friend_removed"
	TypeFriendDeclined  Type = "friend_declined"
	TypeFriendCancelled Type = "friend_cancelled"
	// Pushes of the groups extension.
	TypeGroupEntry       Type = "group_entry"
	TypeGroupJoinRequest Type = "group_join_request"
)

// Features a server may list in its hello (optional "features" array).
const (
	FeatureFriends  = "friends"
	FeaturePresence = "presence"
	FeatureTyping   = "typing"
	FeatureGroups   = "groups"
	// FeatureResume: login takes remember and answers with a token, and
	// resume logs in with it.
	FeatureResume = "resume"
)

// Status is the delivery status reported in the ok to a send.
type Status string

// Send statuses.
const (
	// StatusSent means that at acceptance the recipient had at least one
	// logged-in connection and the message was queued for push on each.
	StatusSent Status = "sent"
	// StatusQueued means the recipient was offline; the message waits in
	// its pending queue.
	StatusQueued Status = "queued"
)

// KickReason is the reason carried in a kicked push.
type KickReason string

// Kick reasons.
const (
	KickShutdown     KickReason = "shutdown"
	KickSlowConsumer KickReason = "slow_consumer"
	KickAdmin        KickReason = "admin"
	KickIdle         KickReason = "idle"
	// KickTooManyConnections is qqd's reason for a connection refused at
	// accept because of max_connections or max_connections_per_ip; it is
	// sent instead of hello.
	KickTooManyConnections KickReason = "too_many_connections"
)

// Message is a chat message as it appears in pushes, offline pages and
// history pages.
type Message struct {
	ID   string `json:"msg_id"`
	From string `json:"from"`
	To   string `json:"to"`
	Body string `json:"body"`
	// TS is the server's wall clock at acceptance, in unix milliseconds.
	TS int64 `json:"ts"`
	// Seq is the message's place among the messages stored for its
	// recipient (1, 2, 3, ... in commit order), for a storage that
	// numbers them (postgres; a qqd extension, omitted when 0). Cluster
	// nodes use it to find pushes the bus lost; a client may ignore it.
	Seq int64 `json:"seq,omitempty"`
}

// Hello is the first frame the server writes on a connection.
type Hello struct {
	Server  string `json:"server"`
	Version string `json:"version"`
	Proto   int    `json:"proto"`
	// Features lists the server's extensions (qqd: Feature*); empty when
	// it has none.
	Features []string `json:"features,omitempty"`
}

// Kicked is the push the server writes before it closes a connection.
type Kicked struct {
	Reason  KickReason `json:"reason"`
	Message string     `json:"message"`
}

// Limits that the contract fixes, independent of server configuration.
const (
	// DefaultMaxFrameBytes is the default bound on a frame's length.
	DefaultMaxFrameBytes = 65536
	// MinMaxBodyBytes is the lowest max_body_bytes a server may set.
	MinMaxBodyBytes = 4096
	// MaxUserBytes is the longest user name.
	MaxUserBytes = 32
	// MaxPasswordBytes is the longest password.
	MaxPasswordBytes = 1024
	// MaxCIDBytes is the longest cid.
	MaxCIDBytes = 128
)

// ValidUser reports whether name is a well-formed user name: 1–32 bytes
// matching ^[a-z0-9][a-z0-9_.-]*$.
func ValidUser(name string) bool {
	if len(name) == 0 || len(name) > MaxUserBytes {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}
