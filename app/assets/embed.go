package assets

import (
	"embed"
	"fmt"
	"io/fs"
)

// FS holds vendor/ and static/. The "all:" prefix also takes vendor/.versions, so the
// binary carries the record of the versions it embeds.
//
// It is the one package-level variable the house rules allow: an embed.FS is read-only.
//
//go:embed all:vendor static
var FS embed.FS

// Vendored returns an error naming the missing files when FS lacks any of the fetched files
// the binary must embed (htmx, uPlot and the licences that ship with them): the binary was
// built without make assets.
func Vendored() error {
	return vendored(FS)
}

func vendored(fsys fs.FS) error {
	var missing []string
	for _, name := range []string{
		"vendor/htmx.min.js",
		"vendor/htmx.LICENSE",
		"vendor/uPlot.iife.min.js",
		"vendor/uPlot.min.css",
		"vendor/uPlot.LICENSE",
	} {
		info, err := fs.Stat(fsys, name)
		if err != nil || info.IsDir() || info.Size() == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("assets: %v not embedded (app/assets/vendor is fetched, not committed): run make assets, then build again", missing)
	}
	return nil
}
