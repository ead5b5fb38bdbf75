package events

// Event types. Standard OCSF 1.3.0 classes keep their uid and name; the rest
// are Bulwark extension classes (uid ExtensionUID*100000 + category*1000 + n).
const (
	TypeAuthLogin       = "auth.login"
	TypeNetConnection   = "net.connection"
	TypeDNSQuery        = "dns.query"
	TypeFileActivity    = "file.activity"
	TypeProcessActivity = "process.activity"
	TypeConfigChange    = "config.change"
	TypeEnrolment       = "device.enrolment"
	TypeUpdateStep      = "update.step"
	TypeIntegrityResult = "integrity.result"
	TypeDeviceCommand   = "device.command"
	TypePolicyDenial    = "policy.denial"
	TypeJournalGap      = "journal.gap"
	TypeClockOffset     = "clock.offset"
	// TypeJournalChainBroken is raised by the server when a device's
	// journal records do not chain onto what it already stored.
	TypeJournalChainBroken = "journal.chain_broken"
	// TypeIoCMatch is raised by the server, or by the agent (matched_by agent),
	// when an event of the device matches an active indicator of
	// compromise.
	TypeIoCMatch = "ioc.match"
)

// ProcessRef identifies a process.
type ProcessRef struct {
	PID    int    `json:"pid" min:"0" doc:"process id"`
	Path   string `json:"path,omitempty" doc:"executable path"`
	SHA256 string `json:"sha256,omitempty" doc:"SHA-256 of the executable, hex"`
	User   string `json:"user,omitempty" doc:"user name or uid owning the process"`
}

// AuthLogin: a login, logoff, sudo or SSH authentication attempt.
type AuthLogin struct {
	Activity string `json:"activity" enum:"logon|logoff" doc:"OCSF activity"`
	Outcome  string `json:"outcome" enum:"success|failure" doc:"result of the attempt"`
	Service  string `json:"service" enum:"ssh|sudo|login|console|other" doc:"what was authenticated to"`
	User     string `json:"user" doc:"user name the attempt was for"`
	SrcIP    string `json:"src_ip,omitempty" doc:"remote address, for network logins"`
	SrcPort  int    `json:"src_port,omitempty" min:"0" max:"65535" doc:"remote port, for network logins"`
	Message  string `json:"message,omitempty" doc:"original log line or reason"`
}

// NetConnection: a new inbound or outbound TCP/UDP flow.
type NetConnection struct {
	Protocol    string      `json:"protocol" enum:"tcp|udp" doc:"transport protocol"`
	Direction   string      `json:"direction" enum:"inbound|outbound" doc:"who opened the flow, seen from the device"`
	SrcIP       string      `json:"src_ip" doc:"source address"`
	SrcPort     int         `json:"src_port" min:"0" max:"65535" doc:"source port"`
	DstIP       string      `json:"dst_ip" doc:"destination address"`
	DstPort     int         `json:"dst_port" min:"0" max:"65535" doc:"destination port"`
	CommunityID string      `json:"community_id" doc:"Community ID v1 flow hash (\"1:...\")"`
	Process     *ProcessRef `json:"process,omitempty" doc:"owning process, when known"`
}

// MaxDNSAnswers bounds DNSQuery.Answers.
const MaxDNSAnswers = 16

// DNSQuery: a DNS query sent by the device and, when seen, its response
// (OCSF DNS Activity: query, rcode, answers, endpoints).
type DNSQuery struct {
	Hostname      string      `json:"hostname" doc:"queried name (OCSF query.hostname), without the trailing dot"`
	QueryType     string      `json:"query_type" doc:"query type (OCSF query.type): A, AAAA, CNAME, MX, TXT, ..., or TYPEn"`
	TransactionID int         `json:"transaction_id" min:"0" max:"65535" doc:"DNS message id (OCSF query.packet_uid)"`
	RCode         string      `json:"rcode,omitempty" doc:"response code name (OCSF rcode): NoError, FormError, ServError, NXDomain, NotImp, Refused, ... or RCODEn; absent when no response was seen"`
	Answers       []DNSAnswer `json:"answers,omitempty" max:"16" doc:"A, AAAA and CNAME records of the response's answer section, in order (OCSF answers)"`
	AnswerCount   int         `json:"answer_count,omitempty" min:"0" max:"65535" doc:"number of records in the response's answer section, of every type, including those not listed in answers"`
	Protocol      string      `json:"protocol" enum:"udp" doc:"transport protocol"`
	SrcIP         string      `json:"src_ip" doc:"address of the querying client"`
	SrcPort       int         `json:"src_port" min:"0" max:"65535" doc:"client port"`
	DstIP         string      `json:"dst_ip" doc:"address of the DNS server queried"`
	DstPort       int         `json:"dst_port" min:"0" max:"65535" doc:"server port"`
	CommunityID   string      `json:"community_id" doc:"Community ID v1 flow hash of the query's UDP flow (\"1:...\")"`
	Process       *ProcessRef `json:"process,omitempty" doc:"process that owned the client socket, when it could be found"`
}

// DNSAnswer is one resource record of a DNS response.
type DNSAnswer struct {
	Type  string `json:"type" enum:"A|AAAA|CNAME" doc:"record type"`
	RData string `json:"rdata" doc:"the address (A, AAAA) or the canonical name (CNAME, without the trailing dot)"`
	TTL   int    `json:"ttl" min:"0" doc:"time to live, seconds"`
}

// FileActivity: a watched file was created, changed or deleted.
type FileActivity struct {
	Activity string `json:"activity" enum:"create|modify|delete|rename" doc:"OCSF activity"`
	Path     string `json:"path" doc:"file path"`
	NewPath  string `json:"new_path,omitempty" doc:"new path, for rename"`
	SHA256   string `json:"sha256,omitempty" doc:"SHA-256 of the file after the change, hex"`
}

// ProcessActivity: a process started or ended.
type ProcessActivity struct {
	Activity string     `json:"activity" enum:"launch|terminate" doc:"OCSF activity"`
	Process  ProcessRef `json:"process" doc:"the process"`
	PPID     int        `json:"ppid,omitempty" min:"0" doc:"parent process id"`
	CmdLine  string     `json:"cmd_line,omitempty" doc:"command line"`
}

// ConfigChange: the agent's configuration changed.
type ConfigChange struct {
	Setting string `json:"setting" doc:"name of the setting"`
	Old     string `json:"old,omitempty" doc:"previous value (secrets redacted)"`
	New     string `json:"new,omitempty" doc:"new value (secrets redacted)"`
	Source  string `json:"source" enum:"server|local" doc:"where the change came from"`
}

// Enrolment: the device enrolled (or failed to) with a server.
type Enrolment struct {
	Outcome    string `json:"outcome" enum:"success|failure" doc:"result"`
	Server     string `json:"server" doc:"server URL"`
	CertSerial string `json:"cert_serial,omitempty" doc:"serial of the issued device certificate"`
	Error      string `json:"error,omitempty" doc:"why it failed"`
}

// UpdateStep: one step of a software update.
type UpdateStep struct {
	Step    string `json:"step" enum:"download|verify|install|switch|commit|rollback" doc:"update step"`
	Outcome string `json:"outcome" enum:"success|failure" doc:"result"`
	Version string `json:"version" doc:"target version"`
	Error   string `json:"error,omitempty" doc:"why it failed"`
}

// IntegrityResult: the outcome of an integrity check.
type IntegrityResult struct {
	Check    string `json:"check" doc:"what was checked, e.g. \"agent-binary\", \"tuf-metadata\", \"journal\""`
	Outcome  string `json:"outcome" enum:"pass|fail" doc:"result"`
	Path     string `json:"path,omitempty" doc:"checked file, if any"`
	Expected string `json:"expected,omitempty" doc:"expected digest or value"`
	Actual   string `json:"actual,omitempty" doc:"observed digest or value"`
}

// DeviceCommand: a lock, unlock or wipe command was carried out (or failed).
type DeviceCommand struct {
	Action    string `json:"action" enum:"lock|unlock|wipe" doc:"command"`
	Outcome   string `json:"outcome" enum:"success|failure" doc:"result"`
	CommandID string `json:"command_id,omitempty" doc:"server command id"`
	Error     string `json:"error,omitempty" doc:"why it failed"`
}

// PolicyDenial: the agent refused an action by policy.
type PolicyDenial struct {
	Policy string `json:"policy" doc:"policy that denied"`
	Action string `json:"action" doc:"what was attempted"`
	Target string `json:"target,omitempty" doc:"what it was attempted on"`
	Reason string `json:"reason" doc:"why it was denied"`
}

// JournalGap: events were lost from the local journal (never silently).
type JournalGap struct {
	FromSeq uint64 `json:"from_seq" min:"1" doc:"first lost sequence number"`
	ToSeq   uint64 `json:"to_seq" min:"1" doc:"last lost sequence number"`
	Reason  string `json:"reason" enum:"overflow|corruption|missing" doc:"why they were lost: overflow or corruption (reported by the agent), missing (the server received later records without these)"`
}

// JournalChainBroken: records received from a device's journal do not
// chain onto the records the server already holds.
type JournalChainBroken struct {
	Seq          uint64 `json:"seq" min:"1" doc:"sequence number of the record that does not chain"`
	ExpectedHash string `json:"expected_hash,omitempty" doc:"hash the record should have linked to (or had)"`
	ActualHash   string `json:"actual_hash,omitempty" doc:"hash the record linked to (or had)"`
	Reason       string `json:"reason" enum:"prev_hash_mismatch|resent_record_differs|checkpoint_mismatch" doc:"what did not match"`
}

// IoCMatch: an event of the device matched an indicator of compromise.
type IoCMatch struct {
	Indicator     string `json:"indicator" doc:"the matched indicator's value (address, CIDR prefix, domain, URL or hash)"`
	IndicatorType string `json:"indicator_type" enum:"ip|cidr|domain|url|sha256|sha1|md5" doc:"the indicator's type"`
	Source        string `json:"source" doc:"name of the indicator source (imported file or feed)"`
	Ref           string `json:"ref,omitempty" doc:"the indicator's id in its source (STIX id, MISP attribute uuid)"`
	Field         string `json:"field" doc:"field of the matched event that matched, e.g. dst_ip or process.sha256"`
	Observed      string `json:"observed" doc:"the value observed in that field"`
	EventSeq      uint64 `json:"event_seq" min:"1" doc:"journal seq of the matched event"`
	EventType     string `json:"event_type" doc:"type of the matched event"`
	MatchedBy     string `json:"matched_by,omitempty" enum:"server|agent" doc:"who matched: the agent, on the device against the indicator set it fetched (docs/ioc.md), or the server; absent means the server"`
}

// ClockOffset: the device clock differs from a reference beyond a threshold.
type ClockOffset struct {
	OffsetMS    int64  `json:"offset_ms" doc:"device time minus reference time, milliseconds"`
	ThresholdMS int64  `json:"threshold_ms" min:"0" doc:"configured threshold, milliseconds"`
	Reference   string `json:"reference" doc:"\"server\" or \"ntp:<host>\""`
}

func init() {
	register(TypeAuthLogin, 3002, "Authentication",
		"A login, logoff, sudo or SSH authentication attempt on the device.",
		AuthLogin{Activity: "logon", Outcome: "failure", Service: "ssh", User: "root", SrcIP: "203.0.113.7", SrcPort: 51022, Message: "Failed password for root from 203.0.113.7 port 51022 ssh2"})
	register(TypeNetConnection, 4001, "Network Activity",
		"A new inbound or outbound TCP or UDP flow.",
		NetConnection{Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: 40512, DstIP: "198.51.100.20", DstPort: 443,
			CommunityID: "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", Process: &ProcessRef{PID: 812, Path: "/usr/bin/curl", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", User: "app"}})
	register(TypeDNSQuery, 4003, "DNS Activity",
		"A DNS query sent by the device over UDP, and its response when one was seen within the pairing timeout (docs/collectors.md). Answers list the A, AAAA and CNAME records; the owning process is found by the client port, best effort.",
		DNSQuery{Hostname: "update.example.com", QueryType: "A", TransactionID: 48879, RCode: "NoError",
			Answers: []DNSAnswer{{Type: "CNAME", RData: "cdn.example.net", TTL: 300}, {Type: "A", RData: "198.51.100.20", TTL: 60}}, AnswerCount: 2,
			Protocol: "udp", SrcIP: "192.0.2.10", SrcPort: 53211, DstIP: "192.0.2.1", DstPort: 53,
			CommunityID: "1:XlkEnIEpGlsxMTHxcQTm/XHq5IM=", Process: &ProcessRef{PID: 812, Path: "/usr/bin/curl", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", User: "app"}})
	register(TypeFileActivity, 1001, "File System Activity",
		"A watched file was created, modified, renamed or deleted.",
		FileActivity{Activity: "modify", Path: "/etc/ssh/sshd_config", SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"})
	register(TypeProcessActivity, 1007, "Process Activity",
		"A process was launched or terminated.",
		ProcessActivity{Activity: "launch", Process: ProcessRef{PID: 4242, Path: "/usr/bin/nc", User: "root"}, PPID: 1, CmdLine: "nc -l 4444"})
	register(TypeConfigChange, 5019, "Device Config State Change",
		"The agent's configuration changed.",
		ConfigChange{Setting: "checkin_interval", Old: "60s", New: "30s", Source: "server"})
	register(TypeEnrolment, ExtensionUID*100000+6001, "Bulwark Device Enrolment",
		"The device enrolled with a server, or failed to.",
		Enrolment{Outcome: "success", Server: "https://bulwark.example.com", CertSerial: "4f1a"})
	register(TypeUpdateStep, ExtensionUID*100000+6002, "Bulwark Update Activity",
		"One step of a software update: download, verify, install, switch, commit or rollback.",
		UpdateStep{Step: "verify", Outcome: "failure", Version: "1.4.2", Error: "sha256 mismatch"})
	register(TypeIntegrityResult, ExtensionUID*100000+5001, "Bulwark Integrity Check",
		"The result of an integrity check.",
		IntegrityResult{Check: "agent-binary", Outcome: "pass", Path: "/usr/bin/bulwark-agent", Expected: "sha256:ab12", Actual: "sha256:ab12"})
	register(TypeDeviceCommand, ExtensionUID*100000+6003, "Bulwark Device Command",
		"A lock, unlock or wipe command was carried out, or failed.",
		DeviceCommand{Action: "lock", Outcome: "success", CommandID: "cmd-17"})
	register(TypePolicyDenial, ExtensionUID*100000+6004, "Bulwark Policy Denial",
		"The agent refused an action because a policy forbids it.",
		PolicyDenial{Policy: "ioc-block", Action: "connect", Target: "198.51.100.66:443", Reason: "destination matches an active indicator"})
	register(TypeJournalGap, ExtensionUID*100000+6005, "Bulwark Journal Gap",
		"Events were dropped from the local journal (overflow of unacknowledged events, or corruption); the lost range is recorded so no loss is silent.",
		JournalGap{FromSeq: 1001, ToSeq: 1480, Reason: "overflow"})
	register(TypeClockOffset, ExtensionUID*100000+6006, "Bulwark Clock Offset",
		"The device clock is off a reference clock by more than the threshold.",
		ClockOffset{OffsetMS: -93000, ThresholdMS: 5000, Reference: "server"})
	register(TypeJournalChainBroken, ExtensionUID*100000+6007, "Bulwark Journal Chain Broken",
		"Raised by the server: records received from the device's journal do not chain onto the records already stored (a record altered, reordered or replaced, or a journal reset), or a signed checkpoint disagrees with them.",
		JournalChainBroken{Seq: 1481, ExpectedHash: "5d41402abc4b2a76b9719d911017c592ae1d3e0a8b1c5f0e7c1d2a3b4c5d6e7f", ActualHash: "9e107d9d372bb6826bd81d3542a419d6c4f6e8b8a0c1d2e3f40516273849a0b1", Reason: "prev_hash_mismatch"})
	register(TypeIoCMatch, ExtensionUID*100000+6008, "Bulwark IoC Match",
		"Raised by the server: an event of the device (a connection's remote address, a DNS query's name, CNAME targets or answer addresses, a file or process hash) matched an active indicator of compromise (docs/ioc.md). The envelope's seq is the matched event's. The agent raises it too, matching against the set it fetched (matched_by agent, its own seq, recorded right after the matched event), so matches are journalled while the device is offline.",
		IoCMatch{Indicator: "198.51.100.0/24", IndicatorType: "cidr", Source: "abuse-feed", Ref: "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", Field: "dst_ip", Observed: "198.51.100.66", EventSeq: 1502, EventType: "net.connection"})
}
