// Package web holds the dashboard's web UI: one HTML page, its script and its style
// sheet, written for Trellis (no third-party code). The script draws the service
// graph and the charts as SVG from the JSON API (/api/graph, /api/services,
// /api/tap).
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the UI's files: index.html, app.js, style.css.
var FS, _ = fs.Sub(static, "static")
