package deviceplugin

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/httpserve"
)

// metrics are the plugin's Prometheus series, on its own registry.
type metrics struct {
	reg           *prometheus.Registry
	devices       *prometheus.GaugeVec
	allocations   *prometheus.CounterVec
	registrations *prometheus.CounterVec
	lists         *prometheus.CounterVec
	scan          prometheus.Histogram
	scanErrors    prometheus.Counter
	reloads       *prometheus.CounterVec
	configOK      prometheus.Gauge
	stranded      *prometheus.GaugeVec
	devInfoGC     *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg:           prometheus.NewRegistry(),
		devices:       gaugeVec("chelsio_sriov_dp_devices", "Devices advertised, by resource and health.", "resource", "health"),
		allocations:   counterVec("chelsio_sriov_dp_allocated_devices_total", "Devices handed out by Allocate.", "resource"),
		registrations: counterVec("chelsio_sriov_dp_registrations_total", "Registrations with kubelet.", "resource"),
		lists:         counterVec("chelsio_sriov_dp_list_updates_total", "Device lists sent to kubelet.", "resource"),
		scan: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chelsio_sriov_dp_scan_duration_seconds", Help: "Time of one sysfs scan.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		scanErrors: counter("chelsio_sriov_dp_scan_errors_total", "Scans that could not read some device."),
		reloads:    counterVec("chelsio_sriov_dp_config_reloads_total", "Config file changes, by result: applied, or refused (the running config kept).", "result"),
		configOK:   gauge("chelsio_sriov_dp_config_last_reload_successful", "1 when the config file in force is the file on disk, 0 after a change was refused."),
		stranded:   gaugeVec("chelsio_sriov_dp_stranded_vfs", "VFs whose netdev is out of the node's network namespace with no CNI attachment recording it, by resource.", "resource"),
		devInfoGC:  counterVec("chelsio_sriov_dp_device_info_removed_total", "Device-info files removed because no pod holds their device any more, by resource.", "resource"),
	}
	m.reloads.WithLabelValues("applied")
	m.reloads.WithLabelValues("refused")
	m.configOK.Set(1) // the config at start was valid, or the plugin would not run
	m.reg.MustRegister(m.devices, m.allocations, m.registrations, m.lists, m.scan, m.scanErrors, m.reloads, m.configOK, m.stranded, m.devInfoGC,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// counterVec, gaugeVec, counter and gauge make the series of each kind from their
// name, help and labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// observeReload counts a config change, applied or refused.
func (m *metrics) observeReload(err error) {
	if err != nil {
		m.reloads.WithLabelValues("refused").Inc()
		m.configOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("applied").Inc()
	m.configOK.Set(1)
}

func (m *metrics) observeScan(d time.Duration, err error) {
	m.scan.Observe(d.Seconds())
	if err != nil {
		m.scanErrors.Inc()
	}
}

func (m *metrics) observeTree(t DeviceTree) {
	m.devices.Reset()
	m.stranded.Reset()
	for name, r := range t {
		h, u, s := 0, 0, 0
		for _, d := range r.Devices {
			if d.Healthy {
				h++
			} else {
				u++
			}
			if d.Stranded {
				s++
			}
		}
		m.devices.WithLabelValues(name, "healthy").Set(float64(h))
		m.devices.WithLabelValues(name, "unhealthy").Set(float64(u))
		m.stranded.WithLabelValues(name).Set(float64(s))
	}
}

func (m *metrics) observeAllocate(resource string, n int) {
	m.allocations.WithLabelValues(resource).Add(float64(n))
}

func (m *metrics) observeRegistration(resource string) {
	m.registrations.WithLabelValues(resource).Inc()
}

func (m *metrics) observeList(resource string) { m.lists.WithLabelValues(resource).Inc() }

// handler serves /metrics, /healthz (200 while the last scan succeeded and every
// resource is served and registered) and /livez.
func (m *metrics) handler(healthy func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	httpserve.Health(mux, healthy)
	return mux
}
