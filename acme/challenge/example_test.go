package challenge_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/strongroom-pki/strongroom/acme/challenge"
	"github.com/strongroom-pki/strongroom/acme/challenge/challengetest"
)

// A dns-01 validation against a private DNS server: the first attempt finds
// no record, the second finds the value the client published.
func ExampleValidator_Validate() {
	dnsSrv, err := challengetest.StartDNSServer("127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	defer dnsSrv.Close()

	v, err := challenge.New(challenge.Options{Resolver: dnsSrv.Addr()})
	if err != nil {
		log.Fatal(err)
	}
	token := "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
	keyAuth := token + ".nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"

	err = v.Validate(context.Background(), challenge.DNS01, challenge.IdentDNS, "example.com", token, keyAuth)
	var ce *challenge.Error
	if errors.As(err, &ce) {
		fmt.Printf("%s: %s\n", ce.Type, ce.Detail)
	}

	dnsSrv.SetTXT("_acme-challenge.example.com", txtValue(keyAuth))
	err = v.Validate(context.Background(), challenge.DNS01, challenge.IdentDNS, "example.com", token, keyAuth)
	fmt.Println("second attempt:", err)
	// Output:
	// unauthorized: no TXT record found at _acme-challenge.example.com
	// second attempt: <nil>
}
