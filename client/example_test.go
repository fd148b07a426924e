package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/qqchat/qq/client"
	"github.com/qqchat/qq/daemon/protocol"
)

// A program that chats through qqd: two users connect, one sends the other
// a message, which is pushed to the recipient, who acks it.
func Example() {
	// The address of a qqd, such as "chat.example.org:5190". This example
	// starts one in process, so that it runs as a test.
	addr, stop := exampleServer()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// connect dials the server, registers user (unless the name is
	// already registered) and logs in.
	connect := func(user, password string) *client.Client {
		c, err := client.Dial(ctx, addr, client.Options{})
		if err != nil {
			log.Fatal(err)
		}
		err = c.Register(ctx, user, password)
		if err != nil && !errors.Is(err, &protocol.Error{Code: protocol.CodeUserExists}) {
			log.Fatal(err)
		}
		if _, err := c.Login(ctx, user, password); err != nil {
			log.Fatal(err)
		}
		return c
	}
	alice := connect("alice", "correct horse battery")
	defer alice.Close()
	bob := connect("bob", "staple of the bay")
	defer bob.Close()

	// A send returns once the message is stored. With a cid, a retry (for
	// example after a timeout) returns the first send's result, and bob
	// gets the message once.
	sent, err := alice.SendCID(ctx, "bob", "lunch at noon?", "alice-1")
	if err != nil {
		log.Fatal(err)
	}
	retry, err := alice.SendCID(ctx, "bob", "lunch at noon?", "alice-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", sent.Status, "- retry is the same message:", retry.MsgID == sent.MsgID)

	// Bob is logged in, so the message is pushed to him. It stays pending
	// for him until he acks it.
	select {
	case m := <-bob.Messages():
		fmt.Printf("bob got %q from %s\n", m.Body, m.From)
		if err := bob.Ack(ctx, m.ID); err != nil {
			log.Fatal(err)
		}
	case <-ctx.Done():
		log.Fatal(ctx.Err())
	}

	// A server error is a *protocol.Error: test its code with errors.Is.
	_, err = alice.Send(ctx, "carol", "hello?")
	fmt.Println("carol is unknown:", errors.Is(err, &protocol.Error{Code: protocol.CodeUnknownUser}))

	// The conversation, oldest first, and what is still pending for bob.
	msgs, _, err := bob.History(ctx, "alice", "", 50)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Printf("history: %s to %s: %q\n", m.From, m.To, m.Body)
	}
	pending, _, err := bob.Offline(ctx, 100)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pending for bob:", len(pending))

	// Output:
	// status: sent - retry is the same message: true
	// bob got "lunch at noon?" from alice
	// carol is unknown: true
	// history: alice to bob: "lunch at noon?"
	// pending for bob: 0
}
