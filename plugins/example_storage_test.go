package plugins_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/qqchat/qq/daemon/protocol"
	"github.com/qqchat/qq/plugins"
	"github.com/qqchat/qq/plugins/sqlite/sqlitestore"
)

// reservedNames is a storage plugin that keeps everything in SQLite
// through the sqlite plugin's own Storage (package sqlitestore, the
// reference implementation of the whole interface) and changes one
// thing: names that start with a reserved prefix cannot be registered.
//
// Embedding plugins.Storage gives it every method of the interface, and it
// overrides one. Embedding hides the friends methods (plugins.Social), the
// group methods (plugins.Groups) and the resume token methods
// (plugins.Tokens) of the store it wraps; its Social, Groups and Tokens
// methods hand them on, so that the plugin keeps those features.
// A storage written from scratch implements every method, with the
// guarantees that docs/plugins.md lists ("Writing a storage plugin") and
// that the conformance suite (package storagetest) checks.
type reservedNames struct {
	plugins.Storage
	prefixes []string
}

// reservedNamesConfig is the plugin's "config" section in qq.yaml.
type reservedNamesConfig struct {
	ReservedPrefixes []string `json:"reserved_prefixes"`
	// SQLite is the sqlite plugin's configuration (path, synchronous,
	// dedup_window), checked by sqlitestore.New.
	SQLite json.RawMessage `json:"sqlite"`
}

// newReservedNames is the plugin's plugins.StorageFactory. The plugin is a
// command of its own whose main is
//
//	func main() { plugins.ServeStorage(newReservedNames) }
func newReservedNames(env plugins.Env, config []byte) (plugins.Storage, error) {
	var c reservedNamesConfig
	errs, _ := plugins.DecodeConfig(config, &c)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("reservednames: %w", err)
	}
	st, err := sqlitestore.New(env, c.SQLite)
	if err != nil {
		return nil, fmt.Errorf("reservednames: %w", err)
	}
	return &reservedNames{Storage: st, prefixes: c.ReservedPrefixes}, nil
}

// Social hands on the Social of the wrapped store (see plugins.SocialOf).
func (s *reservedNames) Social() (plugins.Social, bool) { return plugins.SocialOf(s.Storage) }

// Groups hands on the Groups of the wrapped store (see plugins.GroupsOf).
func (s *reservedNames) Groups() (plugins.Groups, bool) { return plugins.GroupsOf(s.Storage) }

// Tokens hands on the Tokens of the wrapped store (see plugins.TokensOf).
func (s *reservedNames) Tokens() (plugins.Tokens, bool) { return plugins.TokensOf(s.Storage) }

// CreateUser answers a reserved name as taken: the client that tries to
// register it gets user_exists.
func (s *reservedNames) CreateUser(ctx context.Context, user, passwordHash string) error {
	for _, p := range s.prefixes {
		if strings.HasPrefix(user, p) {
			return fmt.Errorf("reservednames: %q is reserved: %w", user, plugins.ErrUserExists)
		}
	}
	return s.Storage.CreateUser(ctx, user, passwordHash)
}

// A storage plugin is a plugins.Storage, a factory that makes it from its
// configuration, and a main that serves the factory. Here the storage is
// called directly; qqd calls it the same way across the process boundary.
func Example_storagePlugin() {
	dir, err := os.MkdirTemp("", "qq-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	st, err := newReservedNames(plugins.Env{DataDir: dir}, []byte(`{"reserved_prefixes": ["admin"], "sqlite": {"path": "qq.db"}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	ctx := context.Background()

	// qqd hashes passwords; the storage keeps the hash as an opaque string.
	err = st.CreateUser(ctx, "admin2", "$argon2id$...")
	fmt.Println("admin2 taken:", errors.Is(err, plugins.ErrUserExists))
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, "$argon2id$..."); err != nil {
			fmt.Println(err)
			return
		}
	}

	// One Write is one transaction. The second message repeats the
	// first's (From, CID): it is answered with the first, not stored.
	res, err := st.Write(ctx, &plugins.WriteBatch{Messages: []plugins.NewMessage{
		{From: "alice", To: "bob", Body: "lunch at noon?", CID: "c1", Status: protocol.StatusQueued},
		{From: "alice", To: "bob", Body: "lunch at noon??", CID: "c1", Status: protocol.StatusSent},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range res {
		fmt.Printf("%q %s duplicate=%t same id=%t\n", r.Message.Body, r.Status, r.Duplicate, r.Message.ID == res[0].Message.ID)
	}
	n, err := st.PendingCount(ctx, "bob")
	fmt.Println("pending for bob:", n, err)

	// Output:
	// admin2 taken: true
	// "lunch at noon?" queued duplicate=false same id=true
	// "lunch at noon?" queued duplicate=true same id=true
	// pending for bob: 1 <nil>
}
