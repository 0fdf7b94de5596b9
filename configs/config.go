package configs

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trackline/trackline/pool/e164"
	"gopkg.in/yaml.v3"
)

//go:embed trackline.yaml
var defaultYAML []byte

// DefaultDisclaimer is the built-in disclaimer (Dutch, then English), the prompt a customer
// names "default". See prompts/README.md.
//
//go:embed prompts/disclaimer.wav
var DefaultDisclaimer []byte

// Config is the whole configuration.
type Config struct {
	DataDir string `yaml:"data_dir"`
	// NodeID names this node in a cluster (docs/cluster.md): in the ready log line, the
	// metrics (trackline_build_info's node label) and the records of the calls it takes.
	// Default: the host name.
	NodeID      string     `yaml:"node_id"`
	Store       Store      `yaml:"store"`
	CountryCode string     `yaml:"country_code"`
	Listen      Listen     `yaml:"listen"`
	AdminToken  string     `yaml:"admin_token"`
	Pool        PoolConfig `yaml:"pool"`
	SIP         SIPConfig  `yaml:"sip"`
	Media       Media      `yaml:"media"`
	WebRTC      WebRTC     `yaml:"webrtc"`
	Recordings  Recordings `yaml:"recordings"`
	Keys        Keys       `yaml:"keys"`
	Runtime     Runtime    `yaml:"runtime"`
	Lifecycle   Lifecycle  `yaml:"lifecycle"`
	App         AppConfig  `yaml:"app"`
	Webhooks    Webhooks   `yaml:"webhooks"`
	GoogleAds   GoogleAds  `yaml:"google_ads"`
	Customers   []Customer `yaml:"customers"`
	// Users are web app accounts made at start when their email is not known yet (demos,
	// the first operator); in production invite users instead (docs/app.md).
	Users []User `yaml:"users"`
}

// Store chooses the store's backend (docs/cluster.md).
type Store struct {
	// Driver is "bbolt" (the default: one file under data_dir) or "postgres" (several nodes
	// on one PostgreSQL database).
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL database (a postgres:// URL or libpq key=value string; a password
	// may also come from PGPASSWORD or ~/.pgpass). Required for postgres, unused for bbolt.
	DSN string `yaml:"dsn"`
}

// The store drivers.
const (
	StoreBbolt    = "bbolt"
	StorePostgres = "postgres"
)

// AppConfig configures the customer's web app (package app), served on listen.app.
type AppConfig struct {
	// PublicURL is the public API's address as customers' sites reach it, for the snippet on
	// the settings page (e.g. https://track.example.com).
	PublicURL string `yaml:"public_url"`
	// URL is the web app's own address, for the invitation links the admin API hands out
	// (e.g. https://app.example.com); without it they are paths.
	URL        string        `yaml:"url"`
	SessionTTL time.Duration `yaml:"session_ttl"` // how long a login lasts (default 12h)
	InviteTTL  time.Duration `yaml:"invite_ttl"`  // how long an invitation link works (default 168h)
}

// User is a web app account the config makes: an operator (no customer) or a user of one
// customer with role admin or member.
type User struct {
	Email    string `yaml:"email"`
	Password string `yaml:"password"` // 12-256 characters; hashed (argon2id) before it is stored
	Customer string `yaml:"customer"` // "" for an operator
	Role     string `yaml:"role"`     // operator | admin | member
}

// Lifecycle holds the contract and retention rules (package pool's lifecycle and sweeper).
type Lifecycle struct {
	SweepInterval    time.Duration `yaml:"sweep_interval"`    // how often the retention sweeper runs (default 1h)
	TrialDays        int           `yaml:"trial_days"`        // length of a new trial (default 14)
	RetentionMonths  int           `yaml:"retention_months"`  // data kept after a contract ended (default 3)
	QuarantineMonths int           `yaml:"quarantine_months"` // numbers of an ended contract (default 6)
	SessionDays      int           `yaml:"session_days"`      // sessions that never led to a call (default 90)
	AuditMonths      int           `yaml:"audit_months"`      // audit entries (default 24)
	ExportDir        string        `yaml:"export_dir"`        // archives of export_then_delete (default <data_dir>/exports)
	// ArchiveHandover is how long an archive of export_then_delete stays in export_dir, for
	// the operator to hand over (GET /v1/archives), before the sweeper deletes it (default 720h).
	ArchiveHandover time.Duration `yaml:"archive_handover"`
}

// Runtime tunes Go's garbage collector; GOGC and GOMEMLIMIT in the environment win.
type Runtime struct {
	GCPercent     int `yaml:"gc_percent"`      // GOGC (default 200)
	MemoryLimitMB int `yaml:"memory_limit_mb"` // GOMEMLIMIT in MiB, a soft limit (default 400; -1: none)
}

// SIPConfig configures the B2BUA.
type SIPConfig struct {
	Listen           string    `yaml:"listen"`
	ExternalHost     string    `yaml:"external_host"`
	Trunks           []Trunk   `yaml:"trunks"`
	TLS              SIPTLS    `yaml:"tls"`    // SIP over TLS (secure.go, docs/security.md)
	Digest           SIPDigest `yaml:"digest"` // digest limits of trunks with credentials (secure.go)
	OutboundProxy    string    `yaml:"outbound_proxy"`
	OutboundUsername string    `yaml:"outbound_username"`
	OutboundPassword string    `yaml:"outbound_password"`
	// OutboundNAT: the business lines are behind NAT; their RTP may come from the IP their
	// answer came from as well as from the IP their SDP names
	OutboundNAT     bool          `yaml:"outbound_nat"`
	ToFallback      bool          `yaml:"to_fallback"`
	RingTimeout     time.Duration `yaml:"ring_timeout"`
	MaxCallDuration time.Duration `yaml:"max_call_duration"`
	DrainTimeout    time.Duration `yaml:"drain_timeout"`
	// TransactionLinger is how long a finished transaction stays to absorb retransmissions
	// (RFC 3261 Timers D, J, L and M; 32 s in the RFC). See docs/api.md.
	TransactionLinger time.Duration `yaml:"transaction_linger"`
	// MaxCPS caps the new calls the switch takes a second; the rest get 503 (default 0: no
	// cap). OverloadDelay is the queueing delay of SIP datagrams above which the switch
	// sheds new calls with 503 (default 20ms); the scheduler's waits and the setups' times
	// are read against it too. See docs/operations.md, "Overload".
	MaxCPS        float64       `yaml:"max_cps"`
	OverloadDelay time.Duration `yaml:"overload_delay"`
	// UnknownSources: what requests from sources that are no trunk get (outside a dialog of
	// a call in progress): drop (the default: no answer at all) or answer. docs/sip-edge.md.
	UnknownSources string  `yaml:"unknown_sources"`
	Edge           SIPEdge `yaml:"edge"` // limits of what the switch reads (configs/edge.go)
}

// Media configures the RTP anchor (package media).
type Media struct {
	IP         string        `yaml:"ip"`          // IPv4 address the RTP sockets bind to (default: the SIP listen host)
	Announce   string        `yaml:"announce"`    // address written in SDP (default: ip)
	RTPPorts   string        `yaml:"rtp_ports"`   // "min-max" (default 10000-31999)
	RTPTimeout time.Duration `yaml:"rtp_timeout"` // no RTP this long ends a call (default 60s; -1s disables)
	// Probation: consecutive packets (one SSRC, consecutive sequence numbers) a source other
	// than the SDP address sends before a leg latches onto it (default 3; 1-16)
	Probation int `yaml:"probation"`
	// LatchWindow is no longer used (a leg latches by address and probation, not by time);
	// kept so that configs that set it still load. The switch logs a warning when it is set.
	LatchWindow time.Duration `yaml:"latch_window"`
	Loops       int           `yaml:"loops"`      // packet loops (default 0: one per core, at most 4)
	BatchWait   time.Duration `yaml:"batch_wait"` // wait after a small batch of packets before reading again (default 2ms; -1s: none)
	// SCHED_FIFO priority of the packet loops' threads (default 10; -1: none)
	RealtimePriority int `yaml:"realtime_priority"`
	// how the loops move packets: auto (io_uring where the kernel allows it, else epoll),
	// epoll, or io_uring (start fails without it)
	IO string `yaml:"io"`
	// whether bridged calls' packets are forwarded in the kernel (eBPF at the interface's
	// ingress): auto (the default: where the process may load it), on (start fails
	// without it), or off
	Kernel string `yaml:"kernel"`
}

// Ports parses RTPPorts.
func (m *Media) Ports() (lo, hi int, err error) {
	a, b, ok := strings.Cut(m.RTPPorts, "-")
	if ok {
		lo, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			hi, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || lo < 1024 || hi > 65535 || hi-lo < 3 {
		return 0, 0, fmt.Errorf("%q: want \"min-max\" within 1024-65535, at least 4 ports", m.RTPPorts)
	}
	return lo, hi, nil
}

// WebRTC configures the browser agents (package agents): business lines "webrtc:<group>".
type WebRTC struct {
	// IPs are the host candidates' addresses (default: every address of the host but
	// loopback); Interfaces limit them to these network interfaces.
	IPs        []string `yaml:"ips"`
	Interfaces []string `yaml:"interfaces"`
	// UDPPorts is "min-max" for ICE and DTLS-SRTP (default: any ephemeral port).
	UDPPorts string `yaml:"udp_ports"`
	// AnnounceIPs replace the host candidates' addresses behind a 1:1 NAT.
	AnnounceIPs []string `yaml:"announce_ips"`
	// Loopback offers 127.0.0.1 candidates too (an agent on the switch's host; tests).
	Loopback bool `yaml:"loopback"`
	// ICEServers are passed to the agent page, for agents behind NAT.
	ICEServers     []ICEServer   `yaml:"ice_servers"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"` // accept to media up (default 10s)
	MaxMessage     int64         `yaml:"max_message"`     // signalling message size limit in bytes (default 16384)
	MaxAgents      int           `yaml:"max_agents"`      // agent pages per customer (default 100)
}

// ICEServer is a STUN or TURN server for the agent page.
type ICEServer struct {
	URLs       []string `yaml:"urls"`
	Username   string   `yaml:"username"`
	Credential string   `yaml:"credential"`
}

// Ports parses UDPPorts; 0, 0 when unset.
func (w *WebRTC) Ports() (lo, hi uint16, err error) {
	if w.UDPPorts == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(w.UDPPorts, "-")
	var l, h int
	if ok {
		l, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			h, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || l < 1024 || h > 65535 || h < l {
		return 0, 0, fmt.Errorf("%q: want \"min-max\" within 1024-65535", w.UDPPorts)
	}
	return uint16(l), uint16(h), nil
}

// Addrs parses IPs.
func (w *WebRTC) Addrs() ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range w.IPs {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", s)
		}
		out = append(out, a)
	}
	return out, nil
}

// Webhooks configures the delivery of the customers' webhooks (package integrations).
type Webhooks struct {
	Workers     int `yaml:"workers"`      // deliveries in flight at most (default 4)
	PerEndpoint int `yaml:"per_endpoint"` // deliveries in flight to one endpoint at most (default 2)
	// AllowCIDRs are ranges webhooks may be delivered to though they are not public
	// (loopback, private, link-local, ...): an operator's own network, a test receiver.
	// Endpoints in them may use http.
	AllowCIDRs []string `yaml:"allow_cidrs"`
}

// Allowed parses AllowCIDRs (addresses or CIDRs).
func (w *Webhooks) Allowed() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range w.AllowCIDRs {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// GoogleAds configures the upload of the customers' offline conversions to Google Ads
// (package integrations/googleads, docs/googleads.md). Without a developer token nothing is
// uploaded; the customers' settings and the CSV work all the same.
type GoogleAds struct {
	// DeveloperToken is the operator's Google Ads API developer token.
	DeveloperToken string        `yaml:"developer_token"`
	BaseURL        string        `yaml:"base_url"`  // the API (default https://googleads.googleapis.com)
	TokenURL       string        `yaml:"token_url"` // the OAuth2 token endpoint (default https://oauth2.googleapis.com/token)
	Interval       time.Duration `yaml:"interval"`  // between two upload rounds (default 5m)
	Batch          int           `yaml:"batch"`     // conversions per request (default 200, at most 2000)
}

// Recordings configures where and how recordings are written.
type Recordings struct {
	Dir     string `yaml:"dir"`     // default <data_dir>/recordings
	Workers int    `yaml:"workers"` // writer goroutines (default 2)
	// ObjectStore, when its endpoint is set, moves finished recordings (still encrypted) to
	// an S3-compatible bucket and serves them from there (docs/cluster.md).
	ObjectStore ObjectStore `yaml:"object_store"`
}

// ObjectStore is an S3-compatible bucket for finished recordings.
type ObjectStore struct {
	Endpoint  string `yaml:"endpoint"`   // host[:port], no scheme; empty: recordings stay local
	Bucket    string `yaml:"bucket"`     // must exist
	Region    string `yaml:"region"`     // optional
	AccessKey string `yaml:"access_key"` // required with an endpoint
	// SecretKey is the secret access key; SecretKeyFile names a file holding it instead, and
	// the environment variable TRACKLINE_OBJECT_SECRET_KEY wins over both.
	SecretKey     string `yaml:"secret_key"`
	SecretKeyFile string `yaml:"secret_key_file"`
	Secure        bool   `yaml:"secure"`       // TLS to the endpoint
	Prefix        string `yaml:"prefix"`       // object names start with it (e.g. "recordings/")
	Uploads       int    `yaml:"uploads"`      // concurrent uploads (default 4, at most 64)
	PartSizeMB    int    `yaml:"part_size_mb"` // multipart part size (default 16, 5 to 512)
}

// Enabled tells whether recordings go to object storage.
func (o *ObjectStore) Enabled() bool { return o.Endpoint != "" }

// Keys configures the per-customer keys (package keyring) that encrypt recordings and make
// caller pseudonyms.
type Keys struct {
	Dir string `yaml:"dir"` // default <data_dir>/keys; back it up apart from the store
	// MasterKeyFile names a file holding a 32-byte master key as 64 hex characters; the key
	// files are then sealed with it. The environment variable TRACKLINE_MASTER_KEY wins.
	MasterKeyFile string `yaml:"master_key_file"`
	// Shared keeps the keys as objects in recordings.object_store's bucket under Prefix
	// (default "keys/"), sealed with the master key, instead of files in Dir: every node of a
	// cluster then has the same key for a customer (docs/cluster.md). Dir keeps only the
	// destructions the object store has not confirmed yet. Required with store.driver
	// postgres; requires a master key and the object store.
	Shared bool   `yaml:"shared"`
	Prefix string `yaml:"prefix"`
}

// Trunk is an inbound trunk: where it sends from, and optional digest credentials.
type Trunk struct {
	Name     string   `yaml:"name"`
	Sources  []string `yaml:"sources"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	// NAT: the trunk is behind NAT; its RTP may come from the IP its INVITEs come from as well
	// as from the IP its SDP names
	NAT bool `yaml:"nat"`
	// ClientCert: accepted only over TLS with a client certificate verified against
	// sip.tls.client_ca_file (naming ClientCertName, when set; such a certificate also
	// identifies the trunk, which then may list no sources). docs/security.md.
	ClientCert     bool   `yaml:"client_cert"`
	ClientCertName string `yaml:"client_cert_name"`
}

// Prefixes parses the trunk's sources (addresses or CIDRs).
func (t *Trunk) Prefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range t.Sources {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Listen holds listener addresses.
type Listen struct {
	HTTP    string `yaml:"http"`
	Admin   string `yaml:"admin"`
	Metrics string `yaml:"metrics"`
	App     string `yaml:"app"` // the web app (default 127.0.0.1:8082)
}

// PoolConfig holds lease timing and the public rate limits.
type PoolConfig struct {
	Lease     time.Duration `yaml:"lease"`
	Grace     time.Duration `yaml:"grace"`
	RateLimit float64       `yaml:"rate_limit"`
	// ClientShare is the share of a customer's pool numbers one client (an address) may
	// take new sessions for in one lease, at least one (default 0.25; docs/api.md).
	ClientShare float64 `yaml:"client_share"`
	// TrustedProxies are the reverse proxies in front of the public API (addresses or
	// CIDRs): from them, X-Forwarded-For names the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Proxies parses TrustedProxies (addresses or CIDRs).
func (p *PoolConfig) Proxies() ([]netip.Prefix, error) {
	return (&Webhooks{AllowCIDRs: p.TrustedProxies}).Allowed()
}

// Customer seeds one customer.
type Customer struct {
	ID              string        `yaml:"id"`
	Name            string        `yaml:"name"`
	Status          string        `yaml:"status"`
	SiteKey         string        `yaml:"site_key"`
	AllowedOrigins  []string      `yaml:"allowed_origins"`
	BusinessLines   []string      `yaml:"business_lines"`
	DisplayNumbers  []string      `yaml:"display_numbers"`
	DisplayFormat   string        `yaml:"display_format"`
	RingTimeout     time.Duration `yaml:"ring_timeout"`
	MaxCallDuration time.Duration `yaml:"max_call_duration"`
	Pool            []string      `yaml:"pool"`
	PoolRange       *Range        `yaml:"pool_range"`
	Channels        []Channel     `yaml:"channels"`
	Recording       Recording     `yaml:"recording"`
	Prompts         Prompts       `yaml:"prompts"`
	// NumberPrompts override Prompts for calls to one tracked number (E.164 key).
	NumberPrompts map[string]Prompts `yaml:"number_prompts"`
	// The contract: a trial's end (default: trial_days after it is made), the end of an
	// active contract (none: open-ended), and what becomes of the data after it ended.
	TrialEnds       time.Time `yaml:"trial_ends"`
	ContractEnds    time.Time `yaml:"contract_ends"`
	RetentionMonths int       `yaml:"retention_months"` // 0: lifecycle.retention_months
	RetentionAction string    `yaml:"retention_action"` // delete (default) | export_then_delete
	// PseudonymousCallers stores callers as a keyed hash and their last three digits only.
	PseudonymousCallers bool `yaml:"pseudonymous_callers"`
}

// Recording is a customer's recording policy (store.RecordingPolicy).
type Recording struct {
	Enabled             bool     `yaml:"enabled"`
	Numbers             []string `yaml:"numbers"`
	Channels            []string `yaml:"channels"`
	ProfessionalSecrecy bool     `yaml:"professional_secrecy"`
	ConsentConfirmed    bool     `yaml:"recording_consent_confirmed"`
}

// Prompts name a customer's prompts: "" none, "default" the built-in disclaimer, or the
// path of an 8 kHz mono 16-bit PCM WAV.
type Prompts struct {
	Disclaimer string `yaml:"disclaimer"`
	Whisper    string `yaml:"whisper"`
}

// Range is a run of consecutive numbers.
type Range struct {
	First string `yaml:"first"`
	Count int    `yaml:"count"`
}

// Channel seeds a channel with its rules and static numbers.
type Channel struct {
	Name    string   `yaml:"name"`
	Rules   []Rule   `yaml:"rules"`
	Numbers []string `yaml:"numbers"`
}

// Rule recognises a channel from a visit: a landing-page parameter (utm_source, gclid, ...,
// or "referrer") and a pattern (the values package pool documents).
type Rule struct {
	Param   string `yaml:"param"`
	Pattern string `yaml:"pattern"`
}

// Problems is every problem found in a config.
type Problems []string

func (p Problems) Error() string { return "config:\n  " + strings.Join(p, "\n  ") }

// A Checker finds problems in a decoded config beyond its schema (package provision checks
// the customers by the domain's rules); Parse reports them with its own, all at once.
type Checker func(*Config) Problems

// Default returns the embedded demo configuration.
func Default(checks ...Checker) (*Config, error) { return Parse(defaultYAML, checks...) }

// Load reads and validates a YAML file.
func Load(path string, checks ...Checker) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, checks...)
}

// Parse decodes and validates YAML (unknown keys are problems too), then runs checks.
func Parse(b []byte, checks ...Checker) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var probs Problems
	if err := dec.Decode(c); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Problems{err.Error()}
		}
		probs = append(probs, te.Errors...)
	}
	c.defaults()
	probs = append(probs, c.Check()...)
	for _, check := range checks {
		probs = append(probs, check(c)...)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return c, nil
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Store.Driver == "" {
		c.Store.Driver = StoreBbolt
	}
	if c.NodeID == "" {
		c.NodeID = defaultNodeID()
	}
	if c.CountryCode == "" {
		c.CountryCode = "31"
	}
	if c.Listen.HTTP == "" {
		c.Listen.HTTP = "127.0.0.1:8080"
	}
	if c.Listen.Admin == "" {
		c.Listen.Admin = "127.0.0.1:8081"
	}
	if c.Listen.Metrics == "" {
		c.Listen.Metrics = "127.0.0.1:9090"
	}
	if c.Listen.App == "" {
		c.Listen.App = "127.0.0.1:8082"
	}
	if c.App.SessionTTL == 0 {
		c.App.SessionTTL = 12 * time.Hour
	}
	if c.App.InviteTTL == 0 {
		c.App.InviteTTL = 7 * 24 * time.Hour
	}
	if c.Pool.Lease == 0 {
		c.Pool.Lease = 30 * time.Minute
	}
	if c.Pool.Grace == 0 {
		c.Pool.Grace = 30 * time.Minute
	}
	if c.Pool.RateLimit == 0 {
		c.Pool.RateLimit = 500
	}
	if c.Pool.ClientShare == 0 {
		c.Pool.ClientShare = 0.25
	}
	if c.SIP.Listen == "" {
		c.SIP.Listen = "127.0.0.1:5060"
	}
	if c.SIP.RingTimeout == 0 {
		c.SIP.RingTimeout = 30 * time.Second
	}
	if c.SIP.MaxCallDuration == 0 {
		c.SIP.MaxCallDuration = 4 * time.Hour
	}
	if c.SIP.DrainTimeout == 0 {
		c.SIP.DrainTimeout = 30 * time.Second
	}
	if c.Runtime.GCPercent == 0 {
		c.Runtime.GCPercent = 200
	}
	if c.Runtime.MemoryLimitMB == 0 {
		c.Runtime.MemoryLimitMB = 400
	}
	if c.SIP.OverloadDelay == 0 {
		c.SIP.OverloadDelay = 20 * time.Millisecond
	}
	if c.SIP.TransactionLinger == 0 {
		c.SIP.TransactionLinger = 6 * time.Second
	}
	if c.Media.RTPPorts == "" {
		c.Media.RTPPorts = "10000-31999"
	}
	if c.Media.RTPTimeout == 0 {
		c.Media.RTPTimeout = 60 * time.Second
	}
	if c.Media.Probation == 0 {
		c.Media.Probation = 3
	}
	if c.Recordings.Workers == 0 {
		c.Recordings.Workers = 2
	}
	if o := &c.Recordings.ObjectStore; o.Enabled() {
		if o.Uploads == 0 {
			o.Uploads = 4
		}
		if o.PartSizeMB == 0 {
			o.PartSizeMB = 16
		}
	}
	if c.Webhooks.Workers == 0 {
		c.Webhooks.Workers = 4
	}
	if c.Webhooks.PerEndpoint == 0 {
		c.Webhooks.PerEndpoint = 2
	}
	if c.GoogleAds.Interval == 0 {
		c.GoogleAds.Interval = 5 * time.Minute
	}
	if c.GoogleAds.Batch == 0 {
		c.GoogleAds.Batch = 200
	}
	if c.WebRTC.ConnectTimeout == 0 {
		c.WebRTC.ConnectTimeout = 10 * time.Second
	}
	if c.WebRTC.MaxMessage == 0 {
		c.WebRTC.MaxMessage = 16 << 10
	}
	if c.WebRTC.MaxAgents == 0 {
		c.WebRTC.MaxAgents = 100
	}
	l := &c.Lifecycle
	for _, d := range []struct {
		dst *int
		v   int
	}{{&l.TrialDays, 14}, {&l.RetentionMonths, 3}, {&l.QuarantineMonths, 6}, {&l.SessionDays, 90}, {&l.AuditMonths, 24}} {
		if *d.dst == 0 {
			*d.dst = d.v
		}
	}
	if l.SweepInterval == 0 {
		l.SweepInterval = time.Hour
	}
	if l.ArchiveHandover == 0 {
		l.ArchiveHandover = 30 * 24 * time.Hour
	}
	for i := range c.Customers {
		cu := &c.Customers[i]
		if cu.Status == "" {
			cu.Status = "active"
		}
		if cu.DisplayFormat == "" {
			cu.DisplayFormat = "national"
		}
	}
}

// adder records one problem at a config path.
type adder func(path, f string, args ...any)

// Check reports every problem of the config's schema at once, section by section, each with
// its path in the file. It is called by Parse and again by the binary after flags override
// fields.
func (c *Config) Check() Problems {
	var p Problems
	add := func(path, f string, args ...any) { p = append(p, path+": "+fmt.Sprintf(f, args...)) }
	for _, section := range []func(adder){
		c.checkTop, c.checkPool, c.checkSIP, c.checkSecure, c.checkRuntime, c.checkMedia, c.checkRecordings,
		c.checkWebRTC, c.checkLifecycle, c.checkCustomers, c.checkApp, c.checkWebhooks, c.checkGoogleAds,
	} {
		section(add)
	}
	return p
}

// checkApp checks app and users.
func (c *Config) checkApp(add adder) {
	if c.App.SessionTTL < 5*time.Minute || c.App.SessionTTL > 30*24*time.Hour {
		add("app.session_ttl", "must be between 5m and 720h")
	}
	if c.App.InviteTTL < time.Hour || c.App.InviteTTL > 30*24*time.Hour {
		add("app.invite_ttl", "must be between 1h and 720h")
	}
	for _, u := range []struct{ path, v string }{{"app.public_url", c.App.PublicURL}, {"app.url", c.App.URL}} {
		if u.v == "" {
			continue
		}
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" {
			add(u.path, "%q is not an http(s) URL", u.v)
		}
	}
	customers := map[string]bool{}
	for _, cu := range c.Customers {
		customers[cu.ID] = true
	}
	emails := map[string]string{}
	for i, u := range c.Users {
		at := fmt.Sprintf("users[%d]", i)
		e := strings.ToLower(strings.TrimSpace(u.Email))
		if i := strings.LastIndexByte(e, '@'); i < 1 || i > len(e)-4 || len(e) > 254 || strings.ContainsAny(e, " <>") {
			add(at+".email", "%q is not an email address", u.Email)
		}
		if prev, dup := emails[e]; dup {
			add(at+".email", "repeats %s", prev)
		}
		emails[e] = at
		if n := len([]rune(u.Password)); n < 12 || len(u.Password) > 256 {
			add(at+".password", "must be 12 to 256 characters")
		}
		switch {
		case u.Role == "operator" && u.Customer != "":
			add(at+".customer", "an operator belongs to no customer")
		case u.Role == "admin" || u.Role == "member":
			if !customers[u.Customer] {
				add(at+".customer", "%q is not a configured customer", u.Customer)
			}
		case u.Role != "operator":
			add(at+".role", "must be operator, admin or member")
		}
	}
}

// checkTop checks the top-level keys and listen.
func (c *Config) checkTop(add adder) {
	if !validNodeID(c.NodeID) {
		add("node_id", "%q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", c.NodeID)
	}
	if !digits(c.CountryCode, 1, 3) {
		add("country_code", "must be 1-3 digits, like \"31\"")
	}
	switch c.Store.Driver {
	case StoreBbolt:
		if c.Store.DSN != "" {
			add("store.dsn", "is for driver postgres; driver bbolt keeps its file in data_dir")
		}
	case StorePostgres:
		if c.Store.DSN == "" {
			add("store.dsn", "is required for driver postgres (e.g. postgres://trackline@db.example.net/trackline)")
		}
		if !c.Keys.Shared {
			add("keys.shared", "must be true with driver postgres: the nodes sharing the store must share the customers' keys (docs/cluster.md)")
		}
	default:
		add("store.driver", "%q is not a store driver: want bbolt or postgres", c.Store.Driver)
	}
	for _, l := range []struct{ path, addr string }{{"listen.http", c.Listen.HTTP}, {"listen.admin", c.Listen.Admin}, {"listen.metrics", c.Listen.Metrics}, {"listen.app", c.Listen.App}, {"sip.listen", c.SIP.Listen}} {
		if _, port, err := net.SplitHostPort(l.addr); err != nil || !digits(port, 1, 5) {
			add(l.path, "%q is not host:port", l.addr)
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 12 {
		add("admin_token", "must be at least 12 characters")
	}
}

// checkPool checks pool.
func (c *Config) checkPool(add adder) {
	if c.Pool.Lease < time.Minute || c.Pool.Lease > 24*time.Hour {
		add("pool.lease", "must be between 1m and 24h")
	}
	if c.Pool.Grace < 0 || c.Pool.Grace > 24*time.Hour {
		add("pool.grace", "must be between 0 and 24h")
	}
	if c.Pool.RateLimit < 0 {
		add("pool.rate_limit", "must not be negative")
	}
	if c.Pool.ClientShare < 0 || c.Pool.ClientShare != c.Pool.ClientShare {
		add("pool.client_share", "must be positive")
	}
	if _, err := c.Pool.Proxies(); err != nil {
		add("pool.trusted_proxies", "%v", err)
	}
}

// checkSIP checks sip.
func (c *Config) checkSIP(add adder) {
	for i, t := range c.SIP.Trunks {
		at := fmt.Sprintf("sip.trunks[%d]", i)
		if len(t.Sources) == 0 && t.ClientCertName == "" {
			add(at+".sources", "must list at least one address or CIDR (or the trunk has a client_cert_name)")
		}
		if _, err := t.Prefixes(); err != nil {
			add(at+".sources", "%v", err)
		}
		if (t.Username == "") != (t.Password == "") {
			add(at, "username and password go together")
		}
	}
	if c.SIP.OutboundProxy != "" && !strings.HasPrefix(c.SIP.OutboundProxy, "sip:") {
		add("sip.outbound_proxy", "must be a sip: URI")
	}
	for _, d := range []struct {
		path   string
		v      time.Duration
		lo, hi time.Duration
	}{{"sip.ring_timeout", c.SIP.RingTimeout, time.Second, 10 * time.Minute},
		{"sip.max_call_duration", c.SIP.MaxCallDuration, time.Second, 48 * time.Hour},
		{"sip.drain_timeout", c.SIP.DrainTimeout, 0, time.Hour},
		{"sip.transaction_linger", c.SIP.TransactionLinger, 4 * time.Second, 32 * time.Second}} {
		if d.v < d.lo || d.v > d.hi {
			add(d.path, "must be between %v and %v", d.lo, d.hi)
		}
	}
	if !(c.SIP.MaxCPS >= 0 && c.SIP.MaxCPS <= 100000) {
		add("sip.max_cps", "must be between 0 (no cap) and 100000")
	}
	if c.SIP.OverloadDelay < time.Millisecond || c.SIP.OverloadDelay > 2*time.Second {
		add("sip.overload_delay", "must be between 1ms and 2s")
	}
	c.checkEdge(add)
}

// checkRuntime checks runtime.
func (c *Config) checkRuntime(add adder) {
	if c.Runtime.GCPercent < 10 || c.Runtime.GCPercent > 1000 {
		add("runtime.gc_percent", "must be between 10 and 1000")
	}
	if c.Runtime.MemoryLimitMB != -1 && c.Runtime.MemoryLimitMB < 64 {
		add("runtime.memory_limit_mb", "must be at least 64, or -1 for none")
	}
}

// checkMedia checks media.
func (c *Config) checkMedia(add adder) {
	if _, _, err := c.Media.Ports(); err != nil {
		add("media.rtp_ports", "%v", err)
	}
	for _, a := range []struct{ path, v string }{{"media.ip", c.Media.IP}, {"media.announce", c.Media.Announce}} {
		if ip, err := netip.ParseAddr(a.v); a.v != "" && (err != nil || !ip.Is4()) {
			add(a.path, "%q is not an IPv4 address", a.v)
		}
	}
	if c.Media.RTPTimeout < 0 && c.Media.RTPTimeout != -time.Second || c.Media.RTPTimeout > 0 && c.Media.RTPTimeout < time.Second {
		add("media.rtp_timeout", "must be at least 1s, or -1s to disable")
	}
	if c.Media.Probation < 1 || c.Media.Probation > 16 {
		add("media.probation", "must be between 1 and 16 packets")
	}
	if c.Media.BatchWait < 0 && c.Media.BatchWait != -time.Second || c.Media.BatchWait > 20*time.Millisecond {
		add("media.batch_wait", "must be between 0 and 20ms, or -1s for none")
	}
	if c.Media.RealtimePriority < -1 || c.Media.RealtimePriority > 99 {
		add("media.realtime_priority", "must be between 1 and 99, or -1 for none")
	}
	switch c.Media.IO {
	case "", "auto", "epoll", "io_uring":
	default:
		add("media.io", "must be auto, epoll or io_uring")
	}
	switch c.Media.Kernel {
	case "", "auto", "on", "off":
	default:
		add("media.kernel", "must be off, auto or on")
	}
	if c.Media.Loops < 0 || c.Media.Loops > 16 {
		add("media.loops", "must be between 1 and 16, or 0 for one per core")
	}
}

// checkRecordings checks recordings.
func (c *Config) checkWebhooks(add adder) {
	w := &c.Webhooks
	if w.Workers < 1 || w.Workers > 256 {
		add("webhooks.workers", "must be between 1 and 256")
	}
	if w.PerEndpoint < 1 || w.PerEndpoint > w.Workers {
		add("webhooks.per_endpoint", "must be between 1 and webhooks.workers (%d)", w.Workers)
	}
	for i, s := range w.AllowCIDRs {
		ws := Webhooks{AllowCIDRs: []string{s}}
		if _, err := ws.Allowed(); err != nil {
			add(fmt.Sprintf("webhooks.allow_cidrs[%d]", i), "%v", err)
		}
	}
}

// checkGoogleAds checks google_ads: the endpoints are https, or http on a loopback host
// (tests).
func (c *Config) checkGoogleAds(add adder) {
	g := &c.GoogleAds
	for _, u := range []struct{ path, v string }{{"google_ads.base_url", g.BaseURL}, {"google_ads.token_url", g.TokenURL}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		loopback := false
		if err == nil {
			if a, aerr := netip.ParseAddr(p.Hostname()); aerr == nil {
				loopback = a.IsLoopback()
			}
		}
		if err != nil || p.Host == "" || !(p.Scheme == "https" || p.Scheme == "http" && loopback) {
			add(u.path, "%q is not an https URL (or http on a loopback address)", u.v)
		}
	}
	if g.Interval < time.Second || g.Interval > 24*time.Hour {
		add("google_ads.interval", "must be between 1s and 24h")
	}
	if g.Batch < 1 || g.Batch > 2000 {
		add("google_ads.batch", "must be between 1 and 2000")
	}
	if strings.ContainsFunc(g.DeveloperToken, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		add("google_ads.developer_token", "must not hold spaces or control characters")
	}
}

func (c *Config) checkRecordings(add adder) {
	if c.Recordings.Workers < 1 || c.Recordings.Workers > 64 {
		add("recordings.workers", "must be between 1 and 64")
	}
	c.checkObjectStore(add)
	c.checkSharedKeys(add)
}

// checkSharedKeys checks keys.shared and keys.prefix. The keys' objects must lie apart from
// the recordings': a customer's erasure deletes every object under the recordings' prefix
// and the customer's id, which must never take keys with it.
func (c *Config) checkSharedKeys(add adder) {
	k, o := &c.Keys, &c.Recordings.ObjectStore
	if !k.Shared {
		if k.Prefix != "" {
			add("keys.prefix", "is for keys.shared")
		}
		return
	}
	if !o.Enabled() {
		add("keys.shared", "needs recordings.object_store: the keys are kept in its bucket")
		return
	}
	if k.Prefix == "" {
		k.Prefix = "keys/"
	}
	switch {
	case strings.ContainsAny(k.Prefix, "\\\x00") || strings.HasPrefix(k.Prefix, "/") || !strings.HasSuffix(k.Prefix, "/"):
		add("keys.prefix", "%q: want a relative path ending in '/', like \"keys/\"", k.Prefix)
	case strings.HasPrefix(k.Prefix, o.Prefix):
		add("keys.prefix", "%q lies under recordings.object_store.prefix %q: set that one (e.g. \"recordings/\") so a customer's erasure cannot reach the keys", k.Prefix, o.Prefix)
	case strings.HasPrefix(o.Prefix, k.Prefix):
		add("keys.prefix", "%q holds recordings.object_store.prefix %q: give them apart prefixes", k.Prefix, o.Prefix)
	}
}

// checkObjectStore checks recordings.object_store: all or nothing.
func (c *Config) checkObjectStore(add adder) {
	o := &c.Recordings.ObjectStore
	const at = "recordings.object_store."
	if !o.Enabled() {
		if o.Bucket != "" || o.AccessKey != "" || o.SecretKey != "" || o.SecretKeyFile != "" || o.Prefix != "" {
			add(at+"endpoint", "is required when the object store has other settings")
		}
		return
	}
	if strings.Contains(o.Endpoint, "://") || strings.ContainsAny(o.Endpoint, "/?# ") {
		add(at+"endpoint", "must be host or host:port, without scheme or path (set secure for TLS)")
	} else if _, port, err := net.SplitHostPort(o.Endpoint); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add(at+"endpoint", "has an invalid port %q", port)
		}
	}
	if !validBucket(o.Bucket) {
		add(at+"bucket", "must be an S3 bucket name: 3 to 63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit")
	}
	if o.AccessKey == "" {
		add(at+"access_key", "is required")
	}
	if o.SecretKey != "" && o.SecretKeyFile != "" {
		add(at+"secret_key_file", "set secret_key or secret_key_file, not both")
	}
	if o.SecretKey == "" && o.SecretKeyFile == "" && os.Getenv("TRACKLINE_OBJECT_SECRET_KEY") == "" {
		add(at+"secret_key", "is required (or secret_key_file, or TRACKLINE_OBJECT_SECRET_KEY)")
	}
	if len(o.Prefix) > 200 || strings.HasPrefix(o.Prefix, "/") || strings.Contains(o.Prefix, "..") ||
		strings.ContainsFunc(o.Prefix, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		add(at+"prefix", "must be at most 200 characters, not start with '/', and hold no '..', '\\' or control characters")
	}
	if o.Uploads < 1 || o.Uploads > 64 {
		add(at+"uploads", "must be between 1 and 64")
	}
	if o.PartSizeMB < 5 || o.PartSizeMB > 512 {
		add(at+"part_size_mb", "must be between 5 and 512")
	}
}

// validBucket tells whether name is an S3 bucket name (the rules every S3 implementation
// accepts).
func validBucket(name string) bool {
	if len(name) < 3 || len(name) > 63 || strings.Contains(name, "..") {
		return false
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (r == '.' || r == '-') && i > 0 && i < len(name)-1
		if !ok {
			return false
		}
	}
	return true
}

// checkLifecycle checks lifecycle.
func (c *Config) checkLifecycle(add adder) {
	l := c.Lifecycle
	if l.SweepInterval < time.Minute || l.SweepInterval > 24*time.Hour {
		add("lifecycle.sweep_interval", "must be between 1m and 24h")
	}
	if l.ArchiveHandover < time.Second || l.ArchiveHandover > 365*24*time.Hour {
		add("lifecycle.archive_handover", "must be between 1s and 8760h")
	}
	for _, n := range []struct {
		path   string
		v      int
		lo, hi int
	}{{"lifecycle.trial_days", l.TrialDays, 1, 365}, {"lifecycle.retention_months", l.RetentionMonths, 1, 120},
		{"lifecycle.quarantine_months", l.QuarantineMonths, 1, 60}, {"lifecycle.session_days", l.SessionDays, 1, 3650},
		{"lifecycle.audit_months", l.AuditMonths, 1, 120}} {
		if n.v < n.lo || n.v > n.hi {
			add(n.path, "must be between %d and %d", n.lo, n.hi)
		}
	}
}

// checkCustomers checks each customer's fields and what must be unique across customers
// (ids, site keys, numbers). The domain's rules for a customer are package provision's.
func (c *Config) checkCustomers(add adder) {
	numbers := map[string]string{}
	ids := map[string]string{}
	keys := map[string]string{}
	for i, cu := range c.Customers {
		at := fmt.Sprintf("customers[%d]", i)
		switch cu.RetentionAction {
		case "", "delete", "export_then_delete":
		default:
			add(at+".retention_action", "must be delete or export_then_delete")
		}
		if cu.RingTimeout != 0 && (cu.RingTimeout < time.Second || cu.RingTimeout > 10*time.Minute) {
			add(at+".ring_timeout", "must be between 1s and 10m")
		}
		if cu.MaxCallDuration != 0 && (cu.MaxCallDuration < time.Second || cu.MaxCallDuration > 48*time.Hour) {
			add(at+".max_call_duration", "must be between 1s and 48h")
		}
		for n := range cu.NumberPrompts {
			if !e164.Valid(n) {
				add(at+".number_prompts", "%q is not E.164", n)
			}
		}
		for j, n := range cu.Recording.Numbers {
			if !e164.Valid(n) {
				add(fmt.Sprintf("%s.recording.numbers[%d]", at, j), "%q is not E.164", n)
			}
		}
		if prev, dup := ids[cu.ID]; dup {
			add(at+".id", "%q repeats %s", cu.ID, prev)
		}
		ids[cu.ID] = at
		if prev, dup := keys[cu.SiteKey]; dup {
			add(at+".site_key", "repeats %s", prev)
		}
		keys[cu.SiteKey] = at
		num := func(path, n string) {
			if !e164.Valid(n) {
				add(path, "%q is not E.164 (like +31852087972)", n)
				return
			}
			if prev, dup := numbers[n]; dup {
				add(path, "%s repeats %s", n, prev)
				return
			}
			numbers[n] = path
		}
		for j, n := range cu.Pool {
			num(fmt.Sprintf("%s.pool[%d]", at, j), n)
		}
		if r := cu.PoolRange; r != nil {
			ns, err := r.Numbers()
			if err != nil {
				add(at+".pool_range", "%v", err)
			}
			for _, n := range ns {
				num(at+".pool_range", n)
			}
		}
		names := map[string]bool{}
		for j, ch := range cu.Channels {
			cat := fmt.Sprintf("%s.channels[%d]", at, j)
			if strings.TrimSpace(ch.Name) == "" {
				add(cat+".name", "must not be empty")
			}
			if names[ch.Name] {
				add(cat+".name", "%q repeats", ch.Name)
			}
			names[ch.Name] = true
			for k, r := range ch.Rules {
				if r.Pattern == "" {
					add(fmt.Sprintf("%s.rules[%d].pattern", cat, k), "must not be empty")
				}
			}
			for k, n := range ch.Numbers {
				num(fmt.Sprintf("%s.numbers[%d]", cat, k), n)
			}
		}
	}
}

// Numbers expands the range.
func (r *Range) Numbers() ([]string, error) {
	if !e164.Valid(r.First) {
		return nil, fmt.Errorf("first: %q is not E.164", r.First)
	}
	if r.Count < 1 || r.Count > 100000 {
		return nil, fmt.Errorf("count: must be 1-100000")
	}
	base, err := strconv.ParseUint(r.First[1:], 10, 64)
	if err != nil {
		return nil, err
	}
	out := make([]string, r.Count)
	for i := range out {
		out[i] = "+" + strconv.FormatUint(base+uint64(i), 10)
		if !e164.Valid(out[i]) {
			return nil, fmt.Errorf("count: runs past %s", out[i-1])
		}
	}
	return out, nil
}

func digits(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// checkWebRTC checks the webrtc section.
func (c *Config) checkWebRTC(add adder) {
	w := &c.WebRTC
	if _, err := w.Addrs(); err != nil {
		add("webrtc.ips", "%v", err)
	}
	if _, _, err := w.Ports(); err != nil {
		add("webrtc.udp_ports", "%v", err)
	}
	for i, a := range w.AnnounceIPs {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			add(fmt.Sprintf("webrtc.announce_ips[%d]", i), "%q is not an IPv4 address", a)
		}
	}
	for i, s := range w.ICEServers {
		at := fmt.Sprintf("webrtc.ice_servers[%d]", i)
		if len(s.URLs) == 0 {
			add(at+".urls", "must list at least one stun:, stuns:, turn: or turns: URL")
		}
		for j, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			if !slices.Contains([]string{"stun", "stuns", "turn", "turns"}, scheme) || len(u) > 256 || strings.ContainsAny(u, " \r\n") {
				add(fmt.Sprintf("%s.urls[%d]", at, j), "%q: want a stun:, stuns:, turn: or turns: URL", u)
			}
		}
		if (scheme(s.URLs) == "turn") && (s.Username == "" || s.Credential == "") {
			add(at, "a TURN server needs username and credential")
		}
	}
	if w.ConnectTimeout < time.Second || w.ConnectTimeout > time.Minute {
		add("webrtc.connect_timeout", "must be between 1s and 1m")
	}
	if w.MaxMessage < 4096 || w.MaxMessage > 1<<20 {
		add("webrtc.max_message", "must be between 4096 and 1048576 bytes")
	}
	if w.MaxAgents < 1 || w.MaxAgents > 10000 {
		add("webrtc.max_agents", "must be between 1 and 10000")
	}
}

// scheme is "turn" when any URL is a TURN server's.
func scheme(urls []string) string {
	for _, u := range urls {
		if strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:") {
			return "turn"
		}
	}
	return ""
}

// defaultNodeID is the host name up to its first dot when it is a valid node id, else "node".
func defaultNodeID() string {
	h, err := os.Hostname()
	if err != nil {
		return "node"
	}
	h, _, _ = strings.Cut(h, ".")
	if !validNodeID(h) {
		return "node"
	}
	return h
}

// validNodeID: 1-63 characters of [A-Za-z0-9._-], the first a letter or digit, so that the id
// is safe as a label value, in a file name and in a log line.
func validNodeID(id string) bool {
	if id == "" || len(id) > 63 {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case i > 0 && (b == '.' || b == '_' || b == '-'):
		default:
			return false
		}
	}
	return true
}
