package browsertest

import "testing"

func TestRegisterAndLogin(t *testing.T) {
	e := newEnv(t)
	p := e.open("alice")
	p.register("alice")
	if got := eval[string](p, `document.getElementById('me').textContent`); got != "alice" {
		t.Errorf("shown user = %q, want alice", got)
	}
	if got := eval[string](p, `JSON.stringify(Object.keys(sessionStorage).map(k => sessionStorage.getItem(k)))`); contains(got, password) {
		t.Errorf("sessionStorage holds the password: %s", got)
	}
	p.click("#logout-button")
	p.waitJS(`!document.getElementById('login').hidden`, "the login form after logout")
	p.login("alice", "wrong-password")
	p.waitJS(`document.getElementById('login-error').textContent.includes('wrong user name or password')`, "the login error")
	p.login("alice", password)
	p.waitLoggedIn()
}
