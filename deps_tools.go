//go:build tools

// This file pins the modules the project is built from while packages are
// being written, so go.mod and go.sum stay complete for every package.
package strongroom

import (
	_ "github.com/cloudflare/circl/secretsharing"
	_ "github.com/gin-gonic/gin"
	_ "github.com/go-acme/lego/v5/challenge/dns01"
	_ "github.com/go-acme/lego/v5/challenge/http01"
	_ "github.com/go-acme/lego/v5/challenge/tlsalpn01"
	_ "github.com/go-acme/lego/v5/lego"
	_ "github.com/go-acme/lego/v5/registration"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/miekg/dns"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/spf13/cobra"
	_ "github.com/zmap/zlint/v3"
	_ "go.step.sm/crypto/jose"
	_ "go.step.sm/crypto/pemutil"
	_ "go.step.sm/crypto/x509util"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/crypto/ocsp"
	_ "golang.org/x/crypto/sha3"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
)
