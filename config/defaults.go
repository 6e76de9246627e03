package config

import (
	"net"
	"time"
)

// ApplyDefaults fills every zero field with its documented default.
func (c *Config) ApplyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defD := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&c.Hostname, "localhost")
	def(&c.Listen.HTTPS, "127.0.0.1:8443")
	def(&c.Listen.HTTP, "127.0.0.1:8080")
	def(&c.URLs.HTTPS, "https://"+hostPort(c.Hostname, c.Listen.HTTPS, "443"))
	def(&c.URLs.HTTP, "http://"+hostPort(c.Hostname, c.Listen.HTTP, "80"))
	def(&c.Database.Driver, "sqlite")
	if c.Database.Driver == "sqlite" {
		def(&c.Database.DSN, "strongroom.db")
	}
	def(&c.HSM.Unseal, "keyfile")
	if c.HSM.Unseal == "keyfile" {
		def(&c.HSM.KeyFile, "unseal.key")
	}
	def(&c.HSM.User, "ca")
	def(&c.HSM.PINFile, "ca.pin")
	def(&c.HSM.AppsUser, "apps")
	def(&c.HSM.AppsPINFile, "apps.pin")
	defD(&c.HSM.UsageSummaryInterval, time.Minute)
	def(&c.HSM.Backup.Dir, "backups")
	if c.HSM.Backup.Keep == 0 {
		c.HSM.Backup.Keep = 7
	}
	defD(&c.HSM.Backup.Interval, 24*time.Hour)
	def(&c.CA.KeyStore, "hsm")
	def(&c.CA.Root.ID, "root")
	def(&c.CA.Root.Cert, "root.pem")
	if len(c.CA.Intermediates) == 0 {
		c.CA.Intermediates = []Issuer{{ID: "intermediate", Cert: "intermediate.pem"}}
	}
	if !c.CA.Root.External {
		def(&c.CA.Root.KeyLabel, c.CA.Root.ID)
	}
	for i := range c.CA.Intermediates {
		in := &c.CA.Intermediates[i]
		def(&in.KeyLabel, in.ID)
		def(&in.Cert, in.ID+".pem")
	}
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	if c.Limits.BodyBytes == 0 {
		c.Limits.BodyBytes = 64 << 10
	}
	defD(&c.Limits.ReadTimeout, 15*time.Second)
	defD(&c.Limits.WriteTimeout, 30*time.Second)
	defD(&c.Limits.IdleTimeout, 120*time.Second)
	defD(&c.Limits.RequestTimeout, c.Limits.WriteTimeout.D()*2/3)
	// A short write timeout shortens the transaction bound too, so a
	// config valid before database.timeout existed stays valid.
	defD(&c.Database.Timeout, min(10*time.Second, c.Limits.RequestTimeout.D()))
	if c.Limits.ConnsPerIP == 0 {
		c.Limits.ConnsPerIP = 1000
	}
	c.Extra.applyDefaults(c)
}

// hostPort joins host with the port of a listen address, leaving out the
// scheme's default port.
func hostPort(host, listen, defaultPort string) string {
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == defaultPort {
		return host
	}
	return net.JoinHostPort(host, port)
}
