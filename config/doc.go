// Package config reads Strongroom's configuration file, DIR/strongroom.yaml.
//
// Decoding is strict: an unknown key is an error that names it. Every field
// has a documented default, applied by Default and by Load for fields the file
// leaves out. Validate checks the whole configuration at start and names the
// offending field in each message.
//
// Secrets never live in the file. Each has an environment variable (see
// Secrets) or, for the development defaults only, a 0600 file in the data
// directory. config does not read those files; it only says where they are.
package config
