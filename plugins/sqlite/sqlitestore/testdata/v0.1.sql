-- A database written by sqlitestore as of commit 8af479f (qq v0.1, schema
-- version 2): five users (dave deleted), eight messages (some acked, one
-- pending for the deleted dave dropped). Made by running that code and
-- `sqlite3 qq.db .dump`; .dump omits PRAGMA user_version, so the last line
-- adds it. TestMigrateV01Database opens it with the current code.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE users (
	name       TEXT NOT NULL PRIMARY KEY,
	pw_hash    TEXT NOT NULL,
	created_ms INTEGER NOT NULL
, deleted_ms INTEGER) STRICT, WITHOUT ROWID;
INSERT INTO users VALUES('alice','$argon2id$v=19$m=65536,t=1,p=4$alice',1764158400000,NULL);
INSERT INTO users VALUES('bob','$argon2id$v=19$m=65536,t=1,p=4$bob',1764158400000,NULL);
INSERT INTO users VALUES('carol','$argon2id$v=19$m=65536,t=1,p=4$carol-2',1764158400000,NULL);
INSERT INTO users VALUES('dave','',1764158400000,1764158402000);
INSERT INTO users VALUES('zoë','$argon2id$v=19$m=65536,t=1,p=4$zoë',1764158400000,NULL);
CREATE TABLE messages (
	seq       INTEGER PRIMARY KEY,
	msg_id    TEXT NOT NULL UNIQUE,
	sender    TEXT NOT NULL REFERENCES users (name),
	recipient TEXT NOT NULL REFERENCES users (name),
	conv      TEXT NOT NULL,
	body      TEXT NOT NULL,
	ts        INTEGER NOT NULL,
	cid       TEXT,
	status    TEXT NOT NULL,
	pending   INTEGER NOT NULL DEFAULT 1 CHECK (pending IN (0, 1))
) STRICT;
INSERT INTO messages VALUES(1,'01kb00hsg0mdwntrjfmq0h3kwz','alice','bob','5:alice bob','hello bob',1764158400000,'k1','queued',0);
INSERT INTO messages VALUES(2,'01kb00hsg021xyrqp22j8v3sna','bob','alice','5:alice bob','hi alice',1764158400000,'k2','sent',0);
INSERT INTO messages VALUES(3,'01kb00hsg0ex2xg04vxard5zy0','alice','alice','5:alice alice','note to self',1764158400000,NULL,'queued',1);
INSERT INTO messages VALUES(4,'01kb00hsg0gxbqw964q5n7xxne','carol','bob','3:bob carol','from carol',1764158400000,'k3','queued',1);
INSERT INTO messages VALUES(5,'01kb00hsg0v1c54wsbr996rjqa','alice','dave','5:alice dave','to dave',1764158400000,'k4','queued',0);
INSERT INTO messages VALUES(6,'01kb00hsg06kypkqqtx78mr1f5','dave','carol','5:carol dave','from dave',1764158400000,'k5','queued',1);
INSERT INTO messages VALUES(7,'01kb00htf8cbb2gyafcxezk5w7','zoë','alice','5:alice zoë','héllo 🌍',1764158401000,'k6','queued',1);
INSERT INTO messages VALUES(8,'01kb00htf80azn6s4kqf3xyv5r','bob','carol','3:bob carol',replace('two\nlines','\n',char(10)),1764158401000,NULL,'sent',1);
CREATE INDEX messages_pending ON messages (recipient, seq) WHERE pending = 1;
CREATE INDEX messages_conv ON messages (conv, seq);
CREATE UNIQUE INDEX messages_sender_cid ON messages (sender, cid) WHERE cid IS NOT NULL;
CREATE INDEX messages_cid_ts ON messages (ts) WHERE cid IS NOT NULL;
COMMIT;
PRAGMA user_version = 2;
