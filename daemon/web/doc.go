// Package web is qqd's web front: one HTTP listener (web.listen) that
// serves the browser client embedded in the binary and, at /ws, a
// WebSocket gateway into the same QQP/1 sessions as the TCP listener.
// It knows nothing of package daemon: a [Listener] is a net.Listener
// whose Accept returns each upgraded WebSocket as a net.Conn, and qqd
// hands it to daemon.Server.Serve like its TCP listeners. Sessions,
// limits, rate limits, filters, metrics and admin calls (users, kick)
// therefore apply to a WebSocket session unchanged.
//
// # The connection contract (server side, and Dial's client side)
//
//   - Each WebSocket text message carries one QQP/1 frame, without a
//     line feed, in each direction. The first message from the server is
//     the hello, as on TCP.
//   - Read streams the message being read followed by one "\n": the
//     daemon's frame reader sees the same byte stream as on TCP and cuts
//     a frame longer than limits.max_frame_bytes (frame_too_large error
//     frame, then close) without the message ever being held whole: the
//     library's own message limit is off (SetReadLimit(-1)) because the
//     session bounds every frame. A line feed inside a message ends a
//     frame there, as on TCP: "A\nB" in one message is read as the two
//     frames A and B (JSON needs no raw line feed, so a well-formed frame
//     has none; blank frames are ignored).
//   - Write splits what the session writes at "\n" and sends each frame
//     as one text message (coalesced output leaves as one message per
//     frame). Bytes after the last "\n" wait for the next Write (the
//     daemon always writes whole frames). On the server side this package
//     encodes the frames of one Write itself and writes them at once, as
//     a burst leaves on TCP; the library writes only control frames.
//   - An idle session's Read waits for the socket outside the library
//     (unix, plain TCP), so that its goroutine's stack shrinks back to
//     what a TCP session's uses.
//   - A binary message is refused: the connection is closed with status
//     1003 (unsupported data) and Read fails; it is counted in
//     qqd_web_binary_messages_total.
//   - Deadlines are those of the underlying TCP (or TLS) connection. After
//     a Read failed on its deadline, a later Read goes on with the stream
//     only if the deadline came between WebSocket frames (nothing of a
//     frame had arrived); the daemon never reads again after one, it only
//     writes its last frame and closes.
//   - RemoteAddr is the TCP peer (a *net.TCPAddr), so the per-IP limits
//     and limits.exempt_networks apply as on TCP; behind a reverse proxy
//     that is the proxy (docs/web.md). LocalAddr is the local TCP address.
//   - Close does not block: it wakes a pending Read, and a goroutine of
//     its own waits for a Write in progress, sends a close frame (status
//     1000, or 1003 after a binary message) and closes the TCP
//     connection. A write deadline of closeTimeout (1 s) bounds both: a
//     Write stuck on a peer that does not read is cut, and then the TCP
//     connection is closed without a close frame. [Listener.Wait] waits
//     for those goroutines.
//   - Pings: the library answers the client's pings while the session
//     reads (it always does, but while it handles a request). The server
//     sends none: browsers do not show pings to the page, so the client
//     keeps its own QQP ping, and limits.idle_timeout ends a silent
//     session as on TCP.
//   - Compression (permessage-deflate) is not negotiated: QQP frames are
//     small, and per-connection deflate state would cost more memory and
//     CPU per message than the bytes it saves on a chat.
//
// # Upgrades
//
// GET /ws upgrades when the request's Origin is allowed: a request without
// Origin (not a browser), one whose Origin host equals its Host (the
// page's own origin), or one matching web.allowed_origins. Any other
// Origin gets 403 before the handshake, so a page on another site cannot
// use a visitor's browser to open a session (cross-site WebSocket
// hijacking); nothing reaches the daemon. Invalid handshakes get the
// library's 4xx. Results are counted in qqd_web_upgrades_total{result}.
//
// Bounds against a flood of connections or upgrades: HTTP connections
// that carry no session yet (page loads, handshakes, upgraded connections
// waiting for the daemon) are at most web.max_http_connections in all
// and web.max_http_connections_per_ip per address; past them a connection
// is closed at accept (qqd_web_http_connections_refused_total{reason}).
// Request headers (and the TLS handshake) must arrive within
// web.handshake_timeout; an upgraded connection that the daemon does not
// take within it is closed with 1013 (try again later). Once taken, the
// session counts against limits.max_connections and
// limits.max_connections_per_ip like a TCP connection, and a connection
// past them gets the kicked too_many_connections push, as on TCP.
//
// # Files
//
// Every other GET or HEAD is a file of the app (the embedded directory
// app/, or Deps.Files): "/" is index.html. Each response carries a strict
// Content-Security-Policy (no inline script or style; connections only to
// the page's own host, over http(s) and ws(s)), X-Content-Type-Options:
// nosniff, Referrer-Policy: no-referrer, X-Frame-Options: DENY and
// same-origin opener and resource policies. Files carry a strong ETag
// (a hash of their content) and Cache-Control: no-cache, so a browser
// revalidates each and gets 304 until qqd is upgraded. Other methods get
// 405.
package web
