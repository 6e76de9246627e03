package ocsp

import (
	"fmt"
	"testing"
	"time"
)

func testAnswer(key string) answer {
	now := time.Now().Truncate(time.Second)
	return answer{der: []byte("der of " + key), thisUpdate: now, nextUpdate: now.Add(time.Hour), etag: `"` + key + `"`, key: key}
}

// An answer made before an invalidation is refused: it may say "good" about
// a certificate revoked meanwhile.
func TestFastAnswersRefuseAnswerOlderThanInvalidation(t *testing.T) {
	f := newFastAnswers(10)
	gen := f.generation()
	f.drop("k1")
	f.put("/ocsp/a", testAnswer("k1"), time.Now().Add(time.Hour), gen)
	if f.get("/ocsp/a") != nil {
		t.Fatal("an answer older than an invalidation was kept")
	}
	f.put("/ocsp/a", testAnswer("k1"), time.Now().Add(time.Hour), f.generation())
	if f.get("/ocsp/a") == nil {
		t.Fatal("a current answer was not kept")
	}
}

func TestFastAnswersBoundedAndIndexed(t *testing.T) {
	f := newFastAnswers(3)
	for i := range 10 {
		key := fmt.Sprintf("k%d", i%4)
		f.put(fmt.Sprintf("/ocsp/%d", i), testAnswer(key), time.Now().Add(time.Hour), f.generation())
		if len(f.byTarget) > 3 {
			t.Fatalf("%d entries kept, limit 3", len(f.byTarget))
		}
		// Every target is listed under its key, and nothing else is.
		n := 0
		for key, ts := range f.byKey {
			for _, target := range ts {
				if e := f.byTarget[target]; e == nil || e.key != key {
					t.Fatalf("index lists %s under %s; entry %+v", target, key, e)
				}
				n++
			}
		}
		if n != len(f.byTarget) {
			t.Fatalf("index has %d targets, map %d", n, len(f.byTarget))
		}
	}
	// Replacing a target's answer keeps one index entry.
	f.put("/ocsp/9", testAnswer("k9"), time.Now().Add(time.Hour), f.generation())
	f.put("/ocsp/9", testAnswer("k9"), time.Now().Add(time.Hour), f.generation())
	if len(f.byKey["k9"]) != 1 {
		t.Fatalf("index of k9: %v", f.byKey["k9"])
	}
	f.drop("k9")
	if f.get("/ocsp/9") != nil || f.byKey["k9"] != nil {
		t.Fatal("drop left the answer")
	}
	off := newFastAnswers(-1)
	off.put("/ocsp/a", testAnswer("k1"), time.Now().Add(time.Hour), off.generation())
	if off.get("/ocsp/a") != nil {
		t.Fatal("kept an answer with the fast answers turned off")
	}
}
