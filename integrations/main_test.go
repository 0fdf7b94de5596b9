package integrations

import (
	"os"
	"testing"

	"github.com/trackline/trackline/internal/storetest"
)

// The tests' stores: bbolt, or PostgreSQL with TRACKLINE_TEST_STORE=postgres (storetest).
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
