// Package ra is the registration authority: the policy every front end
// (REST API, ACME, console) shares — which DNS names, IP addresses, key types
// and sizes, profiles and lifetimes a principal may have — and the
// orchestration of issue and revoke on top of package ca.
//
// ra decides; it does not build or sign certificates (ca does), speak HTTP or
// ACME (the front ends do), or store anything itself. Its errors are
// core.Errors whose Kind the front ends map to problem documents.
package ra
