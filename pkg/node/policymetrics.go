package node

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/httpserve"
)

// PolicyMetrics are the policy agent's Prometheus series, on their own registry.
type PolicyMetrics struct {
	reg         *prometheus.Registry
	rounds      *prometheus.CounterVec
	changes     prometheus.Counter
	refusals    prometheus.Counter
	errors      prometheus.Counter
	lastApplied prometheus.Gauge
}

// NewPolicyMetrics returns the series, each at zero.
func NewPolicyMetrics() *PolicyMetrics {
	m := &PolicyMetrics{
		reg: prometheus.NewRegistry(),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chelsio_vf_policy_rounds_total", Help: "Rounds of the node policy, by result: applied, refused (pods hold VFs a change would remove) or failed.",
		}, []string{"result"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chelsio_vf_policy_changes_total", Help: "Rounds that wrote to the node (VF counts, MTUs, drivers).",
		}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chelsio_vf_policy_refusals_total", Help: "PF changes refused because pods hold VFs, one per PF and round.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chelsio_vf_policy_errors_total", Help: "Errors: an unreadable or invalid policy file, or a PF that failed, one per PF and round.",
		}),
		lastApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chelsio_vf_policy_last_success_timestamp_seconds", Help: "End of the last round that left the node as the policy says (Unix time); 0 before the first.",
		}),
	}
	for _, r := range []string{RoundApplied, RoundRefused, RoundFailed} {
		m.rounds.WithLabelValues(r)
	}
	m.reg.MustRegister(m.rounds, m.changes, m.refusals, m.errors, m.lastApplied,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observe counts a round from its status.
func (m *PolicyMetrics) Observe(st PolicyStatus) {
	m.rounds.WithLabelValues(st.Result).Inc()
	if st.Changed {
		m.changes.Inc()
	}
	failed := 0
	for _, p := range st.PFs {
		switch p.Result {
		case PFRefused:
			m.refusals.Inc()
		case PFFailed:
			failed++
		}
	}
	if st.Error != "" {
		failed++
	}
	m.errors.Add(float64(failed))
	if !st.LastApplied.IsZero() {
		m.lastApplied.Set(float64(st.LastApplied.UnixNano()) / 1e9)
	}
}

// Handler serves /metrics, and /healthz and /livez (200 while the agent runs).
func (m *PolicyMetrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	httpserve.Health(mux, nil)
	return mux
}
