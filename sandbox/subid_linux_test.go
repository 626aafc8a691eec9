package sandbox

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestUserSubIDs(t *testing.T) {
	names := []string{"1000", "alice"}
	for _, tc := range []struct {
		name, file string
		want       []IDMap
		err        string
	}{
		{"none", "bob:100000:65536\n", nil, ""},
		{"by name and number", "# c\n\nalice:100000:10\nbob:200000:10\n1000:300000:5\n", []IDMap{{HostID: 100000, Size: 10}, {HostID: 300000, Size: 5}}, ""},
		{"a duplicate once", "alice:100000:10\n1000:100000:10\n", []IDMap{{HostID: 100000, Size: 10}}, ""},
		{"another user's malformed line", "bob:x:1\nalice:100000:10\n", []IDMap{{HostID: 100000, Size: 10}}, ""},
		{"two fields", "alice:100000\n", nil, `f line 1 "alice:100000": want USER:START:COUNT`},
		{"four fields", "alice:1:2:3\n", nil, "want USER:START:COUNT"},
		{"zero", "alice:100000:0\n", nil, "want USER:START:COUNT"},
		{"negative", "alice:-1:10\n", nil, "want USER:START:COUNT"},
		{"past 2^32-1", "alice:4294967295:1\n", nil, "want USER:START:COUNT"},
		{"own ID", "alice:990:11\n", nil, `f line 1 "alice:990:11": holds your own ID 1000`},
		{"root's", "alice:0:10\n", nil, "holds ID 0, root's"},
		{"another user's", "bob:100005:10\nalice:100000:10\n", nil, `f line 2 "alice:100000:10": overlaps line 1 "bob:100005:10" of user bob`},
		{"own ranges overlap", "alice:100000:10\n1000:100009:10\n", nil, `f line 2 "1000:100009:10": overlaps line 1 "alice:100000:10"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := readSubIDLines([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := userSubIDs("f", lines, names, 1000)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrRootless) {
					t.Fatalf("got %v, %v; want error %q (ErrRootless)", got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestFmtIDRanges(t *testing.T) {
	if got := fmtIDRanges([]IDMap{{ContainerID: 0, HostID: 1000, Size: 1}, {ContainerID: 1, HostID: 100000, Size: 65536}}); got != "0-0,1-65536" {
		t.Errorf("got %q", got)
	}
}
