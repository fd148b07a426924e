package client_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/qqchat/qq/client"
)

// A login that rides through restarts of qqd: the session reconnects by
// itself, fetches what arrived meanwhile and re-sends what was not
// confirmed. The program reads Messages (acking each) and Events (the
// session's own events among the pushes) until they are closed.
func ExampleConnect() {
	addr, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A session logs in; accounts are made with a Client.
	c, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := c.Register(ctx, u, u+"-secret"); err != nil {
			log.Fatal(err)
		}
	}
	c.Close()

	// Remember asks the server for a resume token: the session reconnects
	// with it rather than with the password.
	alice, err := client.Connect(ctx, addr, client.SessionOptions{User: "alice", Password: "alice-secret", Remember: true})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := client.Connect(ctx, addr, client.SessionOptions{User: "bob", Password: "bob-secret"})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	// The first event is the login Connect made. Later ones would say
	// that the connection was lost (EventDown), each attempt to come back
	// (EventReconnecting) and the return (EventUp).
	e := <-bob.Events()
	fmt.Println(e.Type, "attempt", e.Attempt, "pending", e.Pending)
	for _, s := range []*client.Session{alice, bob} {
		go func() {
			for e := range s.Events() {
				if e.Type == client.EventDown {
					log.Printf("%s: %v; reconnecting", s.User(), e.Err)
				}
			}
		}()
	}

	// A send goes through the outbox: it is stored once, even if the
	// connection is lost before its ok.
	r, err := alice.Send(ctx, "bob", "lunch at noon?")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", r.MsgID != "")
	m := <-bob.Messages()
	fmt.Printf("bob got %q from %s\n", m.Body, m.From)
	if err := bob.Ack(ctx, m.ID); err != nil {
		log.Fatal(err)
	}
	token, _ := alice.Token()
	fmt.Println("alice holds a resume token:", strings.HasPrefix(token, "qqt1."))

	// Output:
	// session.up attempt 0 pending 0
	// stored: true
	// bob got "lunch at noon?" from alice
	// alice holds a resume token: true
}
