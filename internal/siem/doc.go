// Package siem forwards Bulwark's security events and alerts to the
// systems operators already watch (Code of Practice guidelines 10.3, secure
// log forwarding, and 10.7, alerting on significant changes of state):
//
//   - Syslog: RFC 5424 messages over TLS (RFC 5425) to a SIEM's syslog
//     collector, for events.
//   - Webhook: HMAC-signed JSON POSTs, for events and alerts.
//   - Mailer: plain-text mail through an SMTP relay with STARTTLS, for
//     alerts.
//
// Syslog and Webhook implement Sink. Every sink, the Mailer included, is
// safe for concurrent use. Delivery is at least once: a sink returns nil
// only after the receiver has the data, and an error otherwise, so that the
// caller keeps the events queued and sends them again; receivers may
// therefore see an event twice and recognise it by device_id and seq.
//
// # Syslog message format (guideline 10.5)
//
// Each event is one RFC 5424 message, framed by octet counting
// ("MSG-LEN SP SYSLOG-MSG", RFC 5425 section 4.3):
//
//	<PRI>1 TIMESTAMP HOSTNAME bulwark - MSGID [bulwark@32473 device="…" seq="…" type="…" severity="…"] BOM JSON
//
// where:
//
//   - PRI = facility × 8 + severity. The facility is local0 (16) by
//     default, and authpriv (10) for auth.login events; both can be
//     configured. The severity maps OCSF to syslog: Informational → 6
//     Informational, Low → 5 Notice, Medium → 4 Warning, High → 3 Error,
//     Critical → 2 Critical, Fatal → 1 Alert, Unknown → 5 Notice. Syslog's
//     0 Emergency is never used.
//   - TIMESTAMP is the event's device_time in UTC with microseconds, e.g.
//     2026-11-26T21:04:05.123456Z (RFC 5424 allows at most six fraction
//     digits; the JSON carries the full time).
//   - HOSTNAME is the device's host name when the configuration maps device
//     IDs to names, else the device ID; bytes outside printable US-ASCII
//     become '_' and it is cut to 255 bytes.
//   - APP-NAME is "bulwark"; PROCID is "-"; MSGID is the event type, e.g.
//     auth.login.
//   - STRUCTURED-DATA is one element, SD-ID bulwark@32473 (32473 is the
//     documentation enterprise number of RFC 5612), with the parameters
//     device, seq, type and severity (the OCSF severity name). '"', '\' and
//     ']' in values are escaped with '\' (RFC 5424 section 6.3.3).
//   - MSG is a UTF-8 byte order mark followed by the event's JSON, exactly
//     as events.Event.Marshal encodes it (see docs/events.md); it never
//     contains a line break.
//
// An alert (Syslog.SendAlert) is one message in the same form, with the
// configured facility, the alert's severity mapped the same way, its time
// as TIMESTAMP, MSGID "alert", the parameters alert (its ID), rule, device
// and severity, and the Alert as JSON for MSG.
//
// A message is at most about 66 KB (events are at most events.MaxEventSize
// bytes of JSON); RFC 5425 only asks collectors to accept 8 KB by default,
// so raise the collector's limit (rsyslog: global(maxMessageSize="128k")).
//
// The connection is TLS 1.3 only unless SyslogConfig.AllowTLS12 is set.
// rsyslog's GnuTLS driver (Debian 12: rsyslog 8.2302, GnuTLS 3.7.9) speaks
// TLS 1.3 in its x509 auth modes, and in anon mode once
// gnutlsPriorityString="NORMAL" is set; with its built-in anon-mode
// priorities it offers TLS 1.2 only.
//
// # Webhook format
//
// The body is one event (events.Event JSON) or one Alert as JSON, with
// headers Bulwark-Kind ("event" or "alert"), Bulwark-Delivery (a random id,
// the same on every retry) and Bulwark-Signature: "t=<unix seconds>,v1=<hex
// HMAC-SHA256(secret, t + "." + body)>". Receivers check it with
// VerifyWebhook.
package siem
