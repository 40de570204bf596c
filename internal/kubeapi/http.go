package kubeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apitypes "k8s.io/apimachinery/pkg/types"
)

// request is what the URL of a call names.
type request struct {
	coll       collection
	apiVersion string // group/version, or v1 for the core group
	namespace  string // "" for a cluster-wide list or a cluster-scoped object
	name       string // "" for the collection
}

func (r request) gr() schema.GroupResource {
	return schema.GroupResource{Group: r.coll.group, Resource: r.coll.resource}
}

// parsePath reads /api/v1/[namespaces/NS/]RESOURCE[/NAME] and
// /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME].
func parsePath(path string) (request, bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	var r request
	switch {
	case len(seg) >= 3 && seg[0] == "api" && seg[1] == "v1":
		r.apiVersion, seg = "v1", seg[2:]
	case len(seg) >= 4 && seg[0] == "apis":
		r.coll.group, r.apiVersion, seg = seg[1], seg[1]+"/"+seg[2], seg[3:]
	default:
		return r, false
	}
	if len(seg) >= 3 && seg[0] == "namespaces" {
		r.namespace, seg = seg[1], seg[2:]
	}
	if len(seg) > 2 || seg[0] == "" || (len(seg) == 2 && seg[1] == "") {
		return r, false // a subresource, or an empty segment
	}
	r.coll.resource = seg[0]
	if len(seg) == 2 {
		r.name = seg[1]
	}
	return r, true
}

// ServeHTTP answers one call of the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	r, ok := parsePath(hr.URL.Path)
	if !ok {
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, hr.URL.Path))
		return
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, 4<<20))
	if err != nil {
		writeError(w, apierrors.NewBadRequest("read body: "+err.Error()))
		return
	}
	out, err := s.handle(hr.Method, r, hr.Header.Get("Content-Type"), body)
	if err != nil {
		writeError(w, err)
		return
	}
	code := http.StatusOK
	if hr.Method == http.MethodPost {
		code = http.StatusCreated
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(out)
}

// handle runs one verb under the lock and returns the answer, encoded: the
// objects are the stored ones, which the next call may change.
func (s *Server) handle(method string, r request, contentType string, body []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out any
	var err error
	switch {
	case method == http.MethodGet && r.name == "":
		out = s.listOf(r)
	case method == http.MethodGet:
		out, err = s.get(r)
	case method == http.MethodPost && r.name == "":
		out, err = s.create(r, body)
	case method == http.MethodPut && r.name != "":
		out, err = s.update(r, body)
	case method == http.MethodPatch && r.name != "":
		out, err = s.patch(r, contentType, body)
	case method == http.MethodDelete && r.name != "":
		out, err = s.delete(r, body)
	default:
		err = apierrors.NewMethodNotSupported(r.gr(), strings.ToLower(method))
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// writeError answers with the metav1.Status of err, as the API server does.
func writeError(w http.ResponseWriter, err error) {
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		se = apierrors.NewInternalError(err)
	}
	st := se.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	b, _ := json.Marshal(st) // a Status always marshals
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_, _ = w.Write(b)
}

// invalid is the 422 the API server answers for an object or patch it refuses,
// which client-go's errors.IsInvalid recognizes.
func invalid(r request, format string, args ...any) error {
	return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", r.gr(), r.name, fmt.Sprintf(format, args...), 0, false)
}

func (s *Server) listOf(r request) map[string]any {
	list := map[string]any{
		"apiVersion": r.apiVersion,
		"metadata":   map[string]any{"resourceVersion": fmt.Sprint(s.rv)},
		"items":      s.list(r.coll, r.namespace),
	}
	if kind := s.kinds[r.coll]; kind != "" {
		list["kind"] = kind + "List"
	}
	return list
}

func (s *Server) get(r request) (object, error) {
	o, ok := s.objs[r.coll][key(r.namespace, r.name)]
	if !ok {
		return nil, apierrors.NewNotFound(r.gr(), r.name)
	}
	return o, nil
}

// decode reads a request's object and checks that its name and namespace agree
// with the URL's; an empty namespace takes the URL's.
func decode(r request, body []byte) (object, error) {
	var o object
	if err := json.Unmarshal(body, &o); err != nil || o == nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body is not a JSON object: %v", err))
	}
	m := meta(o)
	name := metaString(o, "name")
	if name == "" {
		return nil, invalid(r, "metadata.name: Required value")
	}
	if r.name != "" && name != r.name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", name, r.name))
	}
	if ns := metaString(o, "namespace"); ns != "" && ns != r.namespace {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the namespace of the object (%s) does not match the namespace on the request (%s)", ns, r.namespace))
	}
	if r.namespace != "" {
		m["namespace"] = r.namespace
	}
	return o, nil
}

func (s *Server) create(r request, body []byte) (object, error) {
	o, err := decode(r, body)
	if err != nil {
		return nil, err
	}
	name := metaString(o, "name")
	k := key(r.namespace, name)
	if _, ok := s.objs[r.coll][k]; ok {
		return nil, apierrors.NewAlreadyExists(r.gr(), name)
	}
	m := meta(o)
	m["uid"], m["resourceVersion"] = newUID(), s.nextRV()
	m["creationTimestamp"] = time.Now().UTC().Format(time.RFC3339)
	if kind, _ := o["kind"].(string); kind != "" {
		s.kinds[r.coll] = kind
	}
	s.store(r.coll, k, o)
	return o, nil
}

func (s *Server) store(c collection, k string, o object) {
	if s.objs[c] == nil {
		s.objs[c] = map[string]object{}
	}
	s.objs[c][k] = o
}

// replace stores o in place of old, keeping what the server owns, after checking
// the resourceVersion o was made from ("" is unconditional).
func (s *Server) replace(r request, old, o object) (object, error) {
	if rv := metaString(o, "resourceVersion"); rv != "" && rv != metaString(old, "resourceVersion") {
		return nil, apierrors.NewConflict(r.gr(), r.name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	if metaString(o, "name") != r.name || metaString(o, "namespace") != metaString(old, "namespace") {
		return nil, invalid(r, "metadata.name and metadata.namespace cannot change")
	}
	m := meta(o)
	m["uid"], m["creationTimestamp"] = meta(old)["uid"], meta(old)["creationTimestamp"]
	m["resourceVersion"] = s.nextRV()
	s.store(r.coll, key(r.namespace, r.name), o)
	return o, nil
}

func (s *Server) update(r request, body []byte) (object, error) {
	old, err := s.get(r)
	if err != nil {
		return nil, err
	}
	o, err := decode(r, body)
	if err != nil {
		return nil, err
	}
	return s.replace(r, old, o)
}

// patch applies an RFC 6902 JSON patch or an RFC 7386 merge patch. A patch that
// does not apply (a failed "test" among them) is refused as invalid, as the API
// server does; a resourceVersion the patch sets is a precondition.
func (s *Server) patch(r request, contentType string, body []byte) (object, error) {
	old, err := s.get(r)
	if err != nil {
		return nil, err
	}
	doc, _ := json.Marshal(old) // decoded JSON always marshals
	var patched []byte
	switch mt, _, _ := mime.ParseMediaType(contentType); mt {
	case "application/json-patch+json":
		p, err := jsonpatch.DecodePatch(body)
		if err != nil {
			return nil, apierrors.NewBadRequest("decode JSON patch: " + err.Error())
		}
		if patched, err = p.Apply(doc); err != nil {
			return nil, invalid(r, "apply JSON patch: %v", err)
		}
	case "application/merge-patch+json":
		if patched, err = jsonpatch.MergePatch(doc, body); err != nil {
			return nil, invalid(r, "apply merge patch: %v", err)
		}
	default:
		return nil, &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType, Reason: metav1.StatusReasonUnsupportedMediaType,
			Message: fmt.Sprintf("patch type %q is not supported: use application/json-patch+json or application/merge-patch+json", contentType),
		}}
	}
	var o object
	if err := json.Unmarshal(patched, &o); err != nil || o == nil {
		return nil, invalid(r, "the patched object is not a JSON object")
	}
	return s.replace(r, old, o)
}

// delete removes an object, after checking the preconditions of the
// DeleteOptions in the body, if any.
func (s *Server) delete(r request, body []byte) (any, error) {
	old, err := s.get(r)
	if err != nil {
		return nil, err
	}
	var opts struct {
		Preconditions struct {
			UID             *string `json:"uid"`
			ResourceVersion *string `json:"resourceVersion"`
		} `json:"preconditions"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &opts); err != nil {
			return nil, apierrors.NewBadRequest("decode DeleteOptions: " + err.Error())
		}
	}
	pre := opts.Preconditions
	if (pre.UID != nil && *pre.UID != metaString(old, "uid")) ||
		(pre.ResourceVersion != nil && *pre.ResourceVersion != metaString(old, "resourceVersion")) {
		return nil, apierrors.NewConflict(r.gr(), r.name, errors.New("the preconditions of the delete do not hold"))
	}
	delete(s.objs[r.coll], key(r.namespace, r.name))
	return metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{Name: r.name, Group: r.coll.group, Kind: r.coll.resource, UID: apitypes.UID(metaString(old, "uid"))},
	}, nil
}
