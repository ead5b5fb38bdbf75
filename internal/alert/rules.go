package alert

import (
	"time"

	"github.com/bulwark-iot/bulwark/internal/events"
)

// Defaults of the repeated-authentication-failure rule.
const (
	AuthFailureThreshold = 5
	AuthFailureWindow    = 5 * time.Minute
)

// Rule ids.
const (
	RuleDeviceEnrolled    = "device.enrolled"
	RuleDeviceRevoked     = "device.revoked"
	RuleAttestationFailed = "attestation.failed"
	RuleIntegrityFailed   = "integrity.failed"
	RuleHealthUnhealthy   = "health.unhealthy"
	RuleUpdateFailed      = "update.failed"
	RuleIoCMatch          = "ioc.match"
	RuleClockSkew         = "clock.skew"
	RuleJournalGap        = "journal.gap"
	RuleJournalTamper     = "journal.tamper"
	RuleAuthBruteForce    = "auth.repeated_failures"
	RuleConfigDrift       = "config.drift"
	RuleDeviceCommand     = "device.lock_wipe"
	RuleIoCBlockFailed    = "ioc.block_failed"
)

// DefaultRules returns Bulwark's built-in rules (docs/alerts.md).
func DefaultRules() []Rule {
	return []Rule{
		{
			ID: RuleDeviceEnrolled, Severity: events.SeverityInformational,
			Description: "A device enrolled, or re-enrolled under its existing identity.",
			Match:       []Match{{Type: SignalEnrolled}},
			Summary:     "Device enrolled ({action}) in group {group}",
		},
		{
			ID: RuleDeviceRevoked, Severity: events.SeverityMedium,
			Description: "A device was revoked, by an administrator or after a failed attestation.",
			Match:       []Match{{Type: SignalRevoked}},
			Summary:     "Device revoked by {actor}: {reason}",
		},
		{
			ID: RuleAttestationFailed, Severity: events.SeverityHigh,
			Description: "A TPM attestation was contraindicated: a bad or replayed quote, an event log that does not replay, or measurements that differ from the approved reference. A later passing attestation resolves it.",
			Match:       []Match{{Type: SignalAttestationFailed}},
			Clears:      []Match{{Type: SignalAttestationPassed}},
			Summary:     "Attestation failed (contraindicated), action {action}: {problems}",
		},
		{
			ID: RuleIntegrityFailed, Severity: events.SeverityHigh,
			Description: "An integrity check on the device failed (integrity.result with outcome fail), e.g. the agent binary or update metadata changed.",
			Match:       []Match{{Type: events.TypeIntegrityResult, Where: map[string]string{"outcome": "fail"}}},
			Key:         []string{"check"},
			Summary:     "Integrity check {check} failed on {path}: expected {expected}, found {actual}",
		},
		{
			ID: RuleHealthUnhealthy, Severity: events.SeverityMedium,
			Description: "The health status a device reports in its check-ins became unhealthy. Reporting healthy again resolves it.",
			Match:       []Match{{Type: SignalHealthChanged, Where: map[string]string{"status": "unhealthy"}}},
			Clears:      []Match{{Type: SignalHealthChanged, Where: map[string]string{"status": "healthy"}}},
			Summary:     "Health became unhealthy (was {previous})",
		},
		{
			ID: RuleUpdateFailed, Severity: events.SeverityMedium,
			Description: "A software update failed or was rolled back: reported to the deployment (status failed or rolled-back), or journalled by the agent (update.step with outcome failure, or a rollback step).",
			Match: []Match{
				{Type: SignalUpdateStatus, Where: map[string]string{"status": "failed|rolled-back"}},
				{Type: events.TypeUpdateStep, Where: map[string]string{"outcome": "failure"}},
				{Type: events.TypeUpdateStep, Where: map[string]string{"step": "rollback"}},
			},
			Summary: "Update {status|step} ({deployment_id|version}): {detail|error}",
		},
		{
			ID: RuleIoCMatch, Severity: events.SeverityHigh,
			Description: "An indicator of compromise matched on the device: an " + TypeIoCMatch + " event, or a connection the agent blocked by the ioc-block policy. One alert per indicator.",
			Match: []Match{
				{Type: TypeIoCMatch},
				{Type: events.TypePolicyDenial, Where: map[string]string{"policy": "ioc-block"}},
			},
			Key:     []string{"indicator", "target"},
			Summary: "Indicator of compromise matched: {indicator|target}",
		},
		{
			ID: RuleConfigDrift, Severity: events.SeverityMedium,
			Description: "A security setting of the device changed locally, not by the server (config.change with source local): e.g. a collector turned off, the integrity monitor narrowed, IoC blocking lifted. One alert per setting.",
			Match:       []Match{{Type: events.TypeConfigChange, Where: map[string]string{"source": "local"}}},
			Key:         []string{"setting"},
			Summary:     "Setting {setting} changed on the device from {old} to {new}",
		},
		{
			ID: RuleIoCBlockFailed, Severity: events.SeverityMedium,
			Description: "The fleet's IoC policy is block, but the device could not install its nftables rules (config.change of ioc_block to failed: ...): matches are flagged only. The device installing them later resolves it.",
			Match:       []Match{{Type: events.TypeConfigChange, Where: map[string]string{"setting": "ioc_block", "new": "failed:*"}}},
			Clears:      []Match{{Type: events.TypeConfigChange, Where: map[string]string{"setting": "ioc_block", "new": "installed"}}},
			Summary:     "IoC blocking is not enforced on the device: {new}",
		},
		{
			ID: RuleDeviceCommand, Severity: events.SeverityMedium,
			Description: "A lock, unlock or wipe was carried out on the device, or failed (device.command). One alert per action.",
			Match:       []Match{{Type: events.TypeDeviceCommand}},
			Key:         []string{"action"},
			Summary:     "Device {action}: {outcome} (command {command_id}) {error}",
		},
		{
			ID: RuleClockSkew, Severity: events.SeverityLow,
			Description: "The device clock is off its reference beyond the agent's threshold (clock.offset).",
			Match:       []Match{{Type: events.TypeClockOffset}},
			Key:         []string{"reference"},
			Summary:     "Clock off by {offset_ms} ms from {reference} (threshold {threshold_ms} ms)",
		},
		{
			ID: RuleJournalGap, Severity: events.SeverityMedium,
			Description: "Security events were lost from the device's journal: dropped on overflow or corruption (reported by the agent), or missing from what the server received (journal.gap).",
			Match:       []Match{{Type: events.TypeJournalGap}},
			Key:         []string{"reason"},
			Summary:     "Journal gap: events {from_seq} to {to_seq} lost ({reason})",
		},
		{
			ID: RuleJournalTamper, Severity: events.SeverityHigh,
			Description: "The device's journal does not chain onto what the server holds: a record altered, reordered or replaced, or a signed checkpoint that disagrees (journal.chain_broken), or the agent found its journal corrupt (integrity.result of check journal).",
			Match: []Match{
				{Type: events.TypeJournalChainBroken},
				{Type: events.TypeIntegrityResult, Where: map[string]string{"check": "journal", "outcome": "fail"}},
			},
			Summary: "Journal chain broken at seq {seq} ({reason|check})",
		},
		{
			ID: RuleAuthBruteForce, Severity: events.SeverityHigh,
			Description: "Repeated authentication failures on one device: auth.login events with outcome failure, at least the threshold within the window.",
			Match:       []Match{{Type: events.TypeAuthLogin, Where: map[string]string{"outcome": "failure"}}},
			Threshold:   AuthFailureThreshold, Window: AuthFailureWindow,
			Summary: "{count} failed logins within {window}; the last for user {user} via {service} from {src_ip}",
		},
	}
}

// SignalAttestationPassed: an attestation was affirming or a warning
// (it did not fail). It clears attestation.failed.
const SignalAttestationPassed = "attestation.passed"
