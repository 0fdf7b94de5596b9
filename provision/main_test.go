package provision

import (
	"os"
	"testing"

	"github.com/trackline/trackline/internal/storetest"
)

// The tests run on a bbolt store, or with TRACKLINE_TEST_STORE=postgres on PostgreSQL
// (package storetest).
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
