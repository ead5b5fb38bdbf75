package server

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/bulwark-iot/bulwark/internal/tufrepo"
)

// initTUF opens the update repository, creating it (keys and the first
// signed versions) on first start. Artifacts live in DataDir/artifacts,
// named by their SHA-256.
func (s *Server) initTUF(ctx context.Context) error {
	arts := tufrepo.DirArtifacts(filepath.Join(s.cfg.DataDir, "artifacts"))
	repo, err := tufrepo.New(tufrepo.Config{
		Store:     s.store,
		KEK:       s.kek,
		Artifacts: arts,
		Now:       s.now,
		Logger:    s.log.With("component", "tuf"),
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := repo.Init(ctx); err != nil {
		return fmt.Errorf("server: update repository: %w", err)
	}
	s.tuf, s.tufArtifacts = repo, arts
	return nil
}

// refreshTUF re-signs the update repository's metadata that nears expiry;
// the maintenance loop calls it.
func (s *Server) refreshTUF(ctx context.Context) {
	if err := s.tuf.Refresh(ctx, s.now()); err != nil && ctx.Err() == nil {
		s.log.Error("re-signing TUF metadata", "err", err)
	}
}

// TUF returns the update repository, served publicly under /tuf/.
func (s *Server) TUF() *tufrepo.Repo { return s.tuf }
