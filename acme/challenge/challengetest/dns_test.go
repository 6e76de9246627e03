package challengetest_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

func query(t *testing.T, s *challengetest.DNSServer, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	resp, err := dns.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return resp
}

func txts(resp *dns.Msg) []string {
	var out []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, txt.Txt...)
		}
	}
	slices.Sort(out)
	return out
}

func TestDNSServerAnswers(t *testing.T) {
	s := challengetest.NewDNSServer(t)
	s.SetTXT("_acme-challenge.www.example.com", "b", "a")
	s.SetA("www.example.com", "192.0.2.1", "2001:db8::1")
	s.SetTXT("_acme-challenge.deep.example.com", "c")

	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		wantRcode int
		wantCount int
	}{
		{"TXT", "_acme-challenge.www.example.com", dns.TypeTXT, dns.RcodeSuccess, 2},
		{"A", "www.example.com", dns.TypeA, dns.RcodeSuccess, 1},
		{"AAAA", "www.example.com", dns.TypeAAAA, dns.RcodeSuccess, 1},
		{"SOA at the apex", "example.com", dns.TypeSOA, dns.RcodeSuccess, 1},
		{"no SOA below the apex", "www.example.com", dns.TypeSOA, dns.RcodeSuccess, 0},
		{"empty non-terminal", "deep.example.com", dns.TypeTXT, dns.RcodeSuccess, 0},
		{"name under an existing one", "_acme-challenge.other.www.example.com", dns.TypeTXT, dns.RcodeNameError, 0},
		{"unknown name", "nothing.example.com", dns.TypeA, dns.RcodeNameError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := query(t, s, tt.qname, tt.qtype)
			if resp.Rcode != tt.wantRcode || len(resp.Answer) != tt.wantCount {
				t.Fatalf("got %s with %d answers, want %s with %d", dns.RcodeToString[resp.Rcode],
					len(resp.Answer), dns.RcodeToString[tt.wantRcode], tt.wantCount)
			}
		})
	}
}

func TestDNSServerRFC2136(t *testing.T) {
	s := challengetest.NewDNSServer(t)
	const name = "_acme-challenge.example.com."
	rr := func(v string) []dns.RR {
		return []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}}}
	}
	send := func(build func(m *dns.Msg)) {
		t.Helper()
		m := new(dns.Msg)
		m.SetUpdate("example.com.")
		build(m)
		resp, err := dns.Exchange(m, s.Addr())
		if err != nil || resp.Rcode != dns.RcodeSuccess {
			t.Fatalf("update: %v %v", err, resp)
		}
	}
	send(func(m *dns.Msg) { m.Insert(rr("one")); m.Insert(rr("two")) })
	if got := txts(query(t, s, name, dns.TypeTXT)); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("after insert: %v", got)
	}
	send(func(m *dns.Msg) { m.Remove(rr("one")) })
	if got := txts(query(t, s, name, dns.TypeTXT)); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("after remove: %v", got)
	}
	send(func(m *dns.Msg) { m.RemoveRRset(rr("")) })
	if got := s.TXT(name); len(got) != 0 {
		t.Fatalf("after RRset removal: %v", got)
	}
}

func TestDNSServerAPIAndHooks(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed; the hook scripts need it")
	}
	s := challengetest.NewDNSServer(t)
	hooks, err := s.WriteHooks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := func(env []string, path string, args ...string) {
		t.Helper()
		cmd := exec.Command(path, args...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, out)
		}
	}
	run(nil, hooks.LegoExec, "present", "_acme-challenge.a.example.com.", "lego-value")
	run([]string{"CERTBOT_DOMAIN=*.a.example.com", "CERTBOT_VALIDATION=certbot-value"}, hooks.CertbotAuth)
	if got := txts(query(t, s, "_acme-challenge.a.example.com", dns.TypeTXT)); !slices.Equal(got, []string{"certbot-value", "lego-value"}) {
		t.Fatalf("after hooks: %v", got)
	}
	run(nil, hooks.LegoExec, "cleanup", "_acme-challenge.a.example.com.", "lego-value")
	run([]string{"CERTBOT_DOMAIN=a.example.com", "CERTBOT_VALIDATION=certbot-value"}, hooks.CertbotCleanup)
	if got := s.TXT("_acme-challenge.a.example.com"); len(got) != 0 {
		t.Fatalf("after cleanup hooks: %v", got)
	}

	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/set-txt", `{"host":"_acme-challenge.b.example.com.","value":"v"}`, http.StatusOK},
		{"/add-a", `{"host":"b.example.com","addresses":["192.0.2.7"]}`, http.StatusOK},
		{"/present", `{"fqdn":"x"}`, http.StatusBadRequest},
		{"/present", `{"fqdn":"x","value":"v","extra":1}`, http.StatusBadRequest},
		{"/add-a", `{"host":"b.example.com","addresses":["nope"]}`, http.StatusBadRequest},
	} {
		resp, err := http.Post(s.APIURL()+tc.path, "application/json", bytes.NewBufferString(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("POST %s %s: status %d, want %d", tc.path, tc.body, resp.StatusCode, tc.status)
		}
	}
	if got := s.TXT("_acme-challenge.b.example.com"); !slices.Equal(got, []string{"v"}) {
		t.Errorf("set-txt: %v", got)
	}
	if resp := query(t, s, "b.example.com", dns.TypeA); len(resp.Answer) != 1 {
		t.Errorf("add-a: %v", resp.Answer)
	}
}
