package deployments_test

// The served-by locks (pkg/servedby) that the device plugin and the DRA driver
// share: each writes its own locks, so both mount the directory read-write.
func init() {
	hostPathsOK["/run/chelsio-sriov/served-by"] = map[string]string{
		"chelsio-sriov-dp": "its served-by locks, one per VF it offers, so that chelsio-sriov-dra never offers the same VF",
	}
}
