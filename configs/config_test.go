package configs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsTheDemo(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Customers) != 1 || c.Customers[0].PoolRange.Count != 20 || len(c.Customers[0].Channels) < 2 {
		t.Fatalf("default config: %+v", c)
	}
}

func TestEveryProblemIsReportedWithItsPath(t *testing.T) {
	_, err := Parse([]byte(`
country_code: "31x"
listen: {http: "nohostport"}
pool: {lease: 10s, rate_limit: -1}
media: {batch_wait: 50ms, realtime_priority: 100, io: kqueue, kernel: yes, loops: -1}
bogus_key: 1
customers:
  - id: "Bad ID"
    name: A
    status: paused
    site_key: "k"
    allowed_origins: ["ftp://x"]
    pool: ["+31850000001", "0850000002", "+31850000001"]
    channels:
      - name: Flyer
        numbers: ["+31850000001"]
        rules: [{param: ip_address, pattern: "*"}]
`))
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatalf("err = %v", err)
	}
	text := err.Error()
	for _, want := range []string{
		"field bogus_key not found",
		"country_code:",
		"listen.http:",
		"pool.lease:",
		"pool.rate_limit:",
		"media.batch_wait:",
		"media.realtime_priority:",
		"media.io:",
		"media.kernel: must be off, auto or on",
		"media.loops: must be between 1 and 16, or 0 for one per core",
		"customers[0].pool[1]: \"0850000002\" is not E.164",
		"customers[0].pool[2]: +31850000001 repeats customers[0].pool[0]",
		"customers[0].channels[0].numbers[0]: +31850000001 repeats",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in:\n%s", want, text)
		}
	}
}

// sharedKeysYAML is an object store and shared keys.
const sharedKeysYAML = `recordings:
  object_store: {endpoint: 127.0.0.1:9000, bucket: trackline, access_key: a, secret_key: b, prefix: recordings/}
keys:
  shared: true`

func TestStoreDriver(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"default", "country_code: \"31\"", ""},
		{"bbolt", "store: {driver: bbolt}", ""},
		{"postgres", "store: {driver: postgres, dsn: 'postgres://trackline@db/trackline'}\n" + sharedKeysYAML, ""},
		{"postgres without shared keys", "store: {driver: postgres, dsn: 'postgres://trackline@db/trackline'}", "keys.shared: must be true with driver postgres"},
		{"shared keys without object store", "keys: {shared: true}", "keys.shared: needs recordings.object_store"},
		{"shared keys under the recordings", strings.Replace(sharedKeysYAML, "prefix: recordings/", "prefix: ''", 1), "keys.prefix: \"keys/\" lies under recordings.object_store.prefix \"\""},
		{"shared keys holding the recordings", strings.Replace(sharedKeysYAML, "prefix: recordings/", "prefix: keys/rec/", 1), "keys.prefix: \"keys/\" holds"},
		{"shared keys prefix without slash", sharedKeysYAML + "\n  prefix: k", "keys.prefix: \"k\": want a relative path"},
		{"keys prefix without shared", "keys: {prefix: k/}", "keys.prefix: is for keys.shared"},
		{"postgres without dsn", "store: {driver: postgres}", "store.dsn: is required for driver postgres"},
		{"dsn for bbolt", "store: {dsn: 'postgres://db/x'}", "store.dsn: is for driver postgres"},
		{"unknown driver", "store: {driver: mysql}", `store.driver: "mysql" is not a store driver: want bbolt or postgres`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.name == "default" && c.Store.Driver != StoreBbolt {
					t.Fatalf("default driver %q", c.Store.Driver)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCustomerFieldProblems(t *testing.T) {
	_, err := Parse([]byte(`
customers:
  - {id: a, name: A, site_key: "valid-site-key", allowed_origins: ["ftp://x"]}
  - {id: a, name: B, site_key: "valid-site-key", display_numbers: ["12"]}
`))
	for _, want := range []string{"customers[1].id: \"a\" repeats customers[0]", "customers[1].site_key: repeats customers[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(string(defaultYAML))
	f.Add("customers: [{pool_range: {first: '+999999999999999', count: 5}}]")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse([]byte(s))
		if err == nil && len(c.Check()) > 0 {
			t.Fatalf("accepted a config with problems: %v", c.Check())
		}
	})
}

func TestWebRTCProblems(t *testing.T) {
	_, err := Parse([]byte(`
webrtc:
  ips: ["eth0", "::1"]
  udp_ports: 40000-30000
  announce_ips: ["example.net"]
  ice_servers:
    - urls: ["http://stun.example.net"]
    - urls: ["turn:turn.example.net:3478"]
  connect_timeout: 5m
  max_message: 10
customers:
  - {id: a, name: A, site_key: "valid-site-key", business_lines: ["webrtc:Sales Desk"]}
`))
	for _, want := range []string{"webrtc.ips:", "webrtc.udp_ports:", "webrtc.announce_ips[0]:", "webrtc.ice_servers[0].urls[0]:",
		"webrtc.ice_servers[1]: a TURN server needs username and credential", "webrtc.connect_timeout:", "webrtc.max_message:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	c, err := Parse([]byte(`
webrtc:
  ips: ["127.0.0.1"]
  udp_ports: 30000-30099
  loopback: true
  ice_servers: [{urls: ["stun:stun.example.net:3478"]}]
customers:
  - {id: a, name: A, site_key: "valid-site-key", business_lines: ["webrtc:sales", "sip:+31852087972@127.0.0.1:5090"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi, _ := c.WebRTC.Ports(); lo != 30000 || hi != 30099 || c.WebRTC.ConnectTimeout != 10*time.Second {
		t.Fatalf("webrtc %+v", c.WebRTC)
	}
}

func TestNodeID(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if !validNodeID(c.NodeID) {
		t.Errorf("default node id %q is not valid", c.NodeID)
	}
	tests := []struct {
		id string
		ok bool
	}{
		{"node-a", true},
		{"ams1.trackline_2", true},
		{"9", true},
		{"-a", false},
		{".a", false},
		{"a b", false},
		{"a/b", false},
		{"nöde", false},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
	}
	for _, tt := range tests {
		_, err := Parse([]byte("node_id: \"" + tt.id + "\"\n"))
		if got := err == nil || !strings.Contains(err.Error(), "node_id:"); got != tt.ok {
			t.Errorf("node_id %q: err %v, want ok %v", tt.id, err, tt.ok)
		}
	}
}
