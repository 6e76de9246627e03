package api

import _ "embed"

// openAPIDocument is served at GET /api/v1/openapi.json. TestOpenAPIMatchesRoutes
// keeps its paths and methods equal to the registered routes.
//
//go:embed openapi.json
var openAPIDocument []byte
