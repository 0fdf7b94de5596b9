package api

import (
	"os"
	"testing"

	"github.com/trackline/trackline/internal/storetest"
)

// The tests whose store storetest opens (the tenancy and Google Ads ones) run on a bbolt
// store, or with TRACKLINE_TEST_STORE=postgres on PostgreSQL.
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
