// Package assets holds the web app's static files, embedded in the binary (FS):
//
//   - vendor/: third-party files, fetched from the npm registry by scripts/assets.sh
//     (make assets, which make build, run, check and test run first), pinned by version and
//     by checksum, and not committed: htmx (htmx.min.js) and uPlot (uPlot.iife.min.js,
//     uPlot.min.css), each with its licence (htmx.LICENSE, uPlot.LICENSE), and .versions,
//     the script's record of what it fetched.
//   - static/: our own CSS and JavaScript (app.css, app.js), committed.
//
// testdata/ (axe-core, fetched by the same script for the accessibility tests) is not
// embedded. Vendored reports whether the fetched files are there.
package assets
