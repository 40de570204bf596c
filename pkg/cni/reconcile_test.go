package cni

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
)

// TestPodCheckGone: an attachment counts as its pod's absence only when old
// enough, recorded with its pod, and left out of two usable lists.
func TestPodCheckGone(t *testing.T) {
	old, young := time.Now().Add(-time.Hour), time.Now()
	att := func(ns, name string, created time.Time) *cnistore.Attachment {
		return &cnistore.Attachment{ContainerID: "c-" + name, IfName: "net1", PodNamespace: ns, PodName: name, Created: created}
	}
	all := []*cnistore.Attachment{
		att("default", "listed", old),
		att("default", "gone", old),
		att("default", "young", young),
		att("", "", old), // ADD recorded no pod
		att("other", "back", old),
	}
	lists := func(ls ...map[string]bool) func() (map[string]bool, error) {
		i := 0
		return func() (map[string]bool, error) {
			l := ls[min(i, len(ls)-1)]
			i++
			return l, nil
		}
	}
	first := map[string]bool{"default/listed": true, "kube-system/dp": true}
	second := map[string]bool{"default/listed": true, "kube-system/dp": true, "other/back": true}
	names := func(m map[*cnistore.Attachment]bool) []string {
		var out []string
		for a := range m {
			out = append(out, a.PodName)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name  string
		check *PodCheck
		want  []string
	}{
		{"nil", nil, nil},
		{"two lists", &PodCheck{Pods: lists(first, second), Grace: time.Minute, Confirm: time.Millisecond}, []string{"gone"}},
		{"no grace", &PodCheck{Pods: lists(first, second), Confirm: time.Millisecond}, []string{"gone", "young"}},
		{"kubelet lists no pod", &PodCheck{Pods: lists(map[string]bool{}), Confirm: time.Millisecond}, nil},
		{"second list empty", &PodCheck{Pods: lists(first, map[string]bool{}), Confirm: time.Millisecond}, nil},
		{"kubelet does not answer", &PodCheck{Pods: func() (map[string]bool, error) { return nil, errors.New("unreachable") }, Confirm: time.Millisecond}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(tc.check.goneOf(all)); !slices.Equal(got, tc.want) {
				t.Errorf("gone: %v, want %v", got, tc.want)
			}
		})
	}
}
