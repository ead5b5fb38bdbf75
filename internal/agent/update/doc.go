// Package update is the agent's software update path: a verified,
// resumable streaming download, pluggable installers, a crash-safe journal
// and a post-install health check with automatic rollback.
//
// The flow for one release is
//
//	downloading → verifying → installing → switching → health-check → committed
//	        ↘           ↘           ↘                         ↘
//	          failed (nothing switched)                 rolling-back → rolled-back
//
// and each step is recorded in <root>/update.json (written atomically)
// before it starts, so that after a crash or power loss Updater.Resume
// finishes or undoes the interrupted step: the device ends on the old
// version or the new one, never on a half-installed one. Steps before the
// switch are undone (the old version was never touched); an interrupted
// switch is completed and then health-checked; an interrupted health check
// counts as a failure and is rolled back; an interrupted rollback is
// finished.
//
// Download never holds an artifact in memory: it streams through a few fixed
// buffers (about 1.25 MiB) into <dir>/<sha256>.partial, hashing on a second goroutine as it goes, refuses to read
// more than the trusted length, and renames the file to <dir>/<sha256>
// only after the length and every hash matched. The trusted length and
// hashes come from the caller (the TUF client's target info); this package
// does not fetch or verify metadata itself.
//
// Concurrency: an Updater serialises its own methods with a mutex, but it
// assumes it is the only process changing its root (the agent daemon holds
// the agent lock). Installers are driven by one Updater and are not safe
// for concurrent use. Download may run concurrently for different targets;
// callers must not download the same target into the same directory twice
// at once.
package update
