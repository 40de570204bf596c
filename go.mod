module github.com/chelsio-k8s/chelsio-sriov

go 1.26.0
