package sandbox

import (
	"testing"

	"github.com/podsb/podsb/internal/setup"
)

func TestSpawnsBeforeSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []setup.Op
		want bool
	}{
		{"run -d", []setup.Op{{Code: setup.Pdeathsig}, {Code: setup.Pivot}, {Code: setup.Spawn}, {Code: setup.Sync}, {Code: setup.Exec}}, true},
		{"run", []setup.Op{{Code: setup.Pdeathsig}, {Code: setup.Pivot}, {Code: setup.Sync}, {Code: setup.Exec}}, false},
		{"exec -d", []setup.Op{{Code: setup.Spawn}, {Code: setup.Exec}}, false},
		{"exec", []setup.Op{{Code: setup.Pdeathsig}, {Code: setup.Exec}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&program{ops: tc.ops}).spawnsBeforeSync(); got != tc.want {
				t.Errorf("spawnsBeforeSync = %v, want %v", got, tc.want)
			}
		})
	}
}
