package server

import (
	"context"

	"github.com/bulwark-iot/bulwark/internal/api"
)

type auditRecord struct {
	actor, action, target, detail, remote, outcome string
}

// audit appends to the hash-chained audit log. A failure to audit is
// logged loudly; callers that must not proceed without an audit record use
// mustAudit.
func (s *Server) audit(ctx context.Context, r auditRecord) {
	if err := s.mustAudit(ctx, r); err != nil {
		s.log.Error("AUDIT LOG WRITE FAILED", "action", r.action, "actor", r.actor, "err", err)
	}
}

func (s *Server) mustAudit(ctx context.Context, r auditRecord) error {
	return s.store.AppendAudit(context.WithoutCancel(ctx), &api.AuditEntry{
		Time: s.now(), Actor: r.actor, Action: r.action, Target: r.target,
		Detail: r.detail, Remote: r.remote, Outcome: r.outcome,
	})
}

// Audit records an admin action taken outside the HTTP handlers (the local
// CLI, the console).
func (s *Server) Audit(ctx context.Context, actor, action, target, detail, remote, outcome string) {
	s.audit(ctx, auditRecord{actor: actor, action: action, target: target, detail: detail, remote: remote, outcome: outcome})
}
