// Package deployments holds the Kubernetes manifests of chelsio-sriov
// (kubectl apply -k deployments/) and the tests that check them: every manifest
// decodes strictly into its Kubernetes type, the configurations load with the
// plugins' own loaders, and every container runs with the least privilege that
// works.
package deployments
