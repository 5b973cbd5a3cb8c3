// cowsay-xds: a small ADS client that asks istiod for what it pushes to one proxy (the ingress gateway
// or a sidecar) and prints it as JSON: listeners, route configurations, virtual hosts, routes and
// their (weighted) clusters. The end-to-end tests use it as the judge of where Istio sends traffic,
// and the stand-in gateway routes by its output (no Envoy runs here).
//
// Why our own client: istioctl's `proxy-config` reads a running Envoy's admin endpoint, and there is
// no Envoy; pilot's own test client (pkg/adsc) is internal test scaffolding with a much larger surface.
// This one speaks the state-of-the-world ADS protocol with go-control-plane's types from the same
// module graph as the istiod it talks to (tools/xds/go.mod requires istio.io/istio), so the versions
// agree: it subscribes to listeners (LDS), then to the route configurations those listeners name
// (RDS), ACKs every response, and prints a document once both are consistent.
//
//	cowsay-xds dump  --address 127.0.0.1:P --role gateway --namespace istio-ingress --labels istio=ingressgateway
//	cowsay-xds watch ...                # one JSON document per line, each time what istiod pushed changes
//	cowsay-xds wait  ... --host cowsay.example.com --port 80 [--path /] [--header k=v]... \
//	                 --cluster-contains '|v2|' --timeout 10s
//
// See tools/xds/README.md for what istiod sends for the program's objects.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	// The proxy version the node claims: istiod gates some features by it. The module is Istio's main
	// branch at the 1.31 branch point.
	istioVersion = "1.31.0"
)

// ---------------------------------------------------------------------------------------- output

type State struct {
	Node         string        `json:"node"`
	Listeners    []Listener    `json:"listeners"`
	RouteConfigs []RouteConfig `json:"routeConfigs"`
}

type Listener struct {
	Name         string   `json:"name"`
	Address      string   `json:"address"`
	Port         uint32   `json:"port"`
	ServicePort  uint32   `json:"servicePort,omitempty"`
	RouteConfigs []string `json:"routeConfigs"`
	TLS          bool     `json:"tls"`
}

type RouteConfig struct {
	Name         string        `json:"name"`
	VirtualHosts []VirtualHost `json:"virtualHosts"`
}

type VirtualHost struct {
	Name       string   `json:"name"`
	Domains    []string `json:"domains"`
	RequireTLS string   `json:"requireTls,omitempty"`
	Routes     []Route  `json:"routes"`
}

type Route struct {
	Name           string          `json:"name,omitempty"` // the VirtualService's http[].name; Istio sets none otherwise
	Match          Match           `json:"match"`
	Clusters       []Cluster       `json:"clusters,omitempty"`
	Redirect       *Redirect       `json:"redirect,omitempty"`
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`
}

type Match struct {
	Prefix              *string       `json:"prefix,omitempty"`
	Path                *string       `json:"path,omitempty"`
	Regex               *string       `json:"regex,omitempty"`
	PathSeparatedPrefix *string       `json:"pathSeparatedPrefix,omitempty"`
	CaseInsensitive     bool          `json:"caseInsensitive,omitempty"`
	Headers             []HeaderMatch `json:"headers,omitempty"`
}

type HeaderMatch struct {
	Name    string  `json:"name"`
	Exact   *string `json:"exact,omitempty"`
	Prefix  *string `json:"prefix,omitempty"`
	Regex   *string `json:"regex,omitempty"`
	Present *bool   `json:"present,omitempty"`
	Invert  bool    `json:"invert,omitempty"`
}

type Cluster struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight,omitempty"`
}

type Redirect struct {
	Scheme string `json:"scheme,omitempty"`
	Host   string `json:"host,omitempty"`
	Port   uint32 `json:"port,omitempty"`
	Path   string `json:"path,omitempty"`
	Code   int    `json:"code"`
}

type DirectResponse struct {
	Status uint32 `json:"status"`
}

// ------------------------------------------------------------------------------------ conversion

// Istio names each virtual host "<host>:<port>" with the port the request arrives on: the Gateway
// server's (Service) port at a gateway, whose listener is on the pod's target port when the gateway's
// Service maps it ("0.0.0.0_8080" serving port 80), or the Service port at a sidecar.
var vhostPort = regexp.MustCompile(`:(\d+)$`)

func servicePort(vh VirtualHost) uint32 {
	if m := vhostPort.FindStringSubmatch(vh.Name); m != nil {
		p, _ := strconv.ParseUint(m[1], 10, 32)
		return uint32(p)
	}
	return 0
}

func convertListener(l *listener.Listener) Listener {
	out := Listener{Name: l.GetName(), RouteConfigs: []string{}}
	if sa := l.GetAddress().GetSocketAddress(); sa != nil {
		out.Address, out.Port = sa.GetAddress(), sa.GetPortValue()
	}
	for _, fc := range l.GetFilterChains() {
		if fc.GetTransportSocket() != nil {
			out.TLS = true
		}
		for _, f := range fc.GetFilters() {
			if f.GetTypedConfig() == nil {
				continue
			}
			var m hcm.HttpConnectionManager
			if f.GetTypedConfig().MessageIs(&m) && f.GetTypedConfig().UnmarshalTo(&m) == nil {
				if name := m.GetRds().GetRouteConfigName(); name != "" && !slices.Contains(out.RouteConfigs, name) {
					out.RouteConfigs = append(out.RouteConfigs, name)
				}
			}
		}
	}
	return out
}

// withServicePorts sets each listener's servicePort: the one port its virtual hosts' names carry, if
// they agree (a gateway listener on 8080 serving port 80).
func withServicePorts(st *State) {
	for i := range st.Listeners {
		ports := map[uint32]bool{}
		for _, rc := range st.RouteConfigs {
			if slices.Contains(st.Listeners[i].RouteConfigs, rc.Name) {
				for _, vh := range rc.VirtualHosts {
					if p := servicePort(vh); p != 0 {
						ports[p] = true
					}
				}
			}
		}
		if len(ports) == 1 {
			for p := range ports {
				st.Listeners[i].ServicePort = p
			}
		}
	}
}

func strMatch(m *matcher.StringMatcher) (h HeaderMatch) {
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		h.Exact = &p.Exact
	case *matcher.StringMatcher_Prefix:
		h.Prefix = &p.Prefix
	case *matcher.StringMatcher_SafeRegex:
		h.Regex = &p.SafeRegex.Regex
	case *matcher.StringMatcher_Suffix:
		r := ".*" + regexp.QuoteMeta(p.Suffix)
		h.Regex = &r
	case *matcher.StringMatcher_Contains:
		r := ".*" + regexp.QuoteMeta(p.Contains) + ".*"
		h.Regex = &r
	}
	return h
}

func convertRoute(r *route.Route) Route {
	out := Route{Name: r.GetName()}
	m := r.GetMatch()
	switch p := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		out.Match.Prefix = &p.Prefix
	case *route.RouteMatch_Path:
		out.Match.Path = &p.Path
	case *route.RouteMatch_SafeRegex:
		out.Match.Regex = &p.SafeRegex.Regex
	case *route.RouteMatch_PathSeparatedPrefix:
		out.Match.PathSeparatedPrefix = &p.PathSeparatedPrefix
	}
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		out.Match.CaseInsensitive = true
	}
	for _, hm := range m.GetHeaders() {
		var h HeaderMatch
		switch p := hm.GetHeaderMatchSpecifier().(type) {
		case *route.HeaderMatcher_StringMatch:
			h = strMatch(p.StringMatch)
		case *route.HeaderMatcher_ExactMatch:
			h.Exact = &p.ExactMatch
		case *route.HeaderMatcher_PrefixMatch:
			h.Prefix = &p.PrefixMatch
		case *route.HeaderMatcher_SafeRegexMatch:
			h.Regex = &p.SafeRegexMatch.Regex
		case *route.HeaderMatcher_PresentMatch:
			h.Present = &p.PresentMatch
		}
		h.Name, h.Invert = hm.GetName(), hm.GetInvertMatch()
		out.Match.Headers = append(out.Match.Headers, h)
	}
	switch a := r.GetAction().(type) {
	case *route.Route_Route:
		if c := a.Route.GetCluster(); c != "" {
			out.Clusters = []Cluster{{Name: c}}
		}
		for _, wc := range a.Route.GetWeightedClusters().GetClusters() {
			out.Clusters = append(out.Clusters, Cluster{Name: wc.GetName(), Weight: wc.GetWeight().GetValue()})
		}
	case *route.Route_Redirect:
		rd := &Redirect{Host: a.Redirect.GetHostRedirect(), Port: a.Redirect.GetPortRedirect(),
			Path: a.Redirect.GetPathRedirect(), Code: redirectCode(a.Redirect.GetResponseCode())}
		if a.Redirect.GetHttpsRedirect() {
			rd.Scheme = "https"
		} else {
			rd.Scheme = a.Redirect.GetSchemeRedirect()
		}
		out.Redirect = rd
	case *route.Route_DirectResponse:
		out.DirectResponse = &DirectResponse{Status: a.DirectResponse.GetStatus()}
	}
	return out
}

func redirectCode(c route.RedirectAction_RedirectResponseCode) int {
	switch c {
	case route.RedirectAction_FOUND:
		return 302
	case route.RedirectAction_SEE_OTHER:
		return 303
	case route.RedirectAction_TEMPORARY_REDIRECT:
		return 307
	case route.RedirectAction_PERMANENT_REDIRECT:
		return 308
	default:
		return 301
	}
}

func convertRouteConfig(rc *route.RouteConfiguration) RouteConfig {
	out := RouteConfig{Name: rc.GetName(), VirtualHosts: []VirtualHost{}}
	for _, vh := range rc.GetVirtualHosts() {
		v := VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains(), Routes: []Route{}}
		if vh.GetRequireTls() != route.VirtualHost_NONE {
			v.RequireTLS = vh.GetRequireTls().String()
		}
		for _, r := range vh.GetRoutes() {
			v.Routes = append(v.Routes, convertRoute(r))
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out
}

// ------------------------------------------------------------------------------------ the client

type options struct {
	address, role, namespace, pod, ip string
	labels                            map[string]string
	timeout                           time.Duration
	// wait
	host, path, clusterContains string
	port                        uint
	headers                     map[string]string
}

func nodeID(o *options) string {
	kind := "router"
	if o.role == "sidecar" {
		kind = "sidecar"
	}
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", kind, o.ip, o.pod, o.namespace, o.namespace)
}

// node builds the Envoy node istiod identifies a proxy by. Without a pod of that name in the cluster,
// istiod takes the labels and namespace from this metadata (as the Helm gateway's istio-agent sends them).
func node(o *options) (*core.Node, error) {
	labels := map[string]any{}
	for k, v := range o.labels {
		labels[k] = v
	}
	meta, err := structpb.NewStruct(map[string]any{
		"NAMESPACE":       o.namespace,
		"NAME":            o.pod,
		"LABELS":          labels,
		"CLUSTER_ID":      "Kubernetes",
		"ISTIO_VERSION":   istioVersion,
		"SERVICE_ACCOUNT": "default",
		"WORKLOAD_NAME":   strings.TrimSuffix(o.pod, "-0"),
		"INSTANCE_IPS":    o.ip,
	})
	if err != nil {
		return nil, err
	}
	return &core.Node{Id: nodeID(o), Cluster: strings.TrimSuffix(o.pod, "-0") + "." + o.namespace, Metadata: meta}, nil
}

// stream runs one ADS stream and calls emit with each consistent state (every route configuration a
// listener names has arrived), until emit returns true (done) or ctx ends.
func stream(ctx context.Context, o *options, emit func(*State) bool) error {
	conn, err := grpc.NewClient(o.address, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	n, err := node(o)
	if err != nil {
		return err
	}
	ads, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("connecting to istiod at %s: %w", o.address, err)
	}
	if err := ads.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: typeListener}); err != nil {
		return err
	}
	listeners := map[string]Listener{}
	routes := map[string]RouteConfig{}
	var routeNames []string // what we subscribed to
	var lastRouteNonce, lastRouteVersion string
	for {
		resp, err := ads.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("istiod closed the stream")
			}
			return err
		}
		ack := &discovery.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		switch resp.GetTypeUrl() {
		case typeListener:
			listeners = map[string]Listener{}
			for _, a := range resp.GetResources() {
				var l listener.Listener
				if err := a.UnmarshalTo(&l); err != nil {
					return fmt.Errorf("decoding a listener: %w", err)
				}
				listeners[l.GetName()] = convertListener(&l)
			}
			if err := ads.Send(ack); err != nil {
				return err
			}
			want := wantedRoutes(listeners)
			if !slices.Equal(want, routeNames) {
				routeNames = want
				for name := range routes {
					if !slices.Contains(want, name) {
						delete(routes, name)
					}
				}
				// A changed subscription: the new names, with the last RDS version and nonce (an ACK that
				// also changes the subscription, as Envoy sends it).
				if err := ads.Send(&discovery.DiscoveryRequest{TypeUrl: typeRoute, ResourceNames: want,
					VersionInfo: lastRouteVersion, ResponseNonce: lastRouteNonce}); err != nil {
					return err
				}
			}
		case typeRoute:
			for _, a := range resp.GetResources() {
				var rc route.RouteConfiguration
				if err := a.UnmarshalTo(&rc); err != nil {
					return fmt.Errorf("decoding a route configuration: %w", err)
				}
				routes[rc.GetName()] = convertRouteConfig(&rc)
			}
			lastRouteNonce, lastRouteVersion = resp.GetNonce(), resp.GetVersionInfo()
			ack.ResourceNames = routeNames
			if err := ads.Send(ack); err != nil {
				return err
			}
		default:
			if err := ads.Send(ack); err != nil {
				return err
			}
			continue
		}
		if st := consistent(n.GetId(), listeners, routes, routeNames); st != nil && emit(st) {
			return nil
		}
	}
}

func wantedRoutes(ls map[string]Listener) []string {
	var names []string
	for _, l := range ls {
		for _, r := range l.RouteConfigs {
			if !slices.Contains(names, r) {
				names = append(names, r)
			}
		}
	}
	sort.Strings(names)
	return names
}

// consistent returns the state if every named route configuration has arrived, else nil.
func consistent(id string, ls map[string]Listener, rs map[string]RouteConfig, names []string) *State {
	st := &State{Node: id, Listeners: []Listener{}, RouteConfigs: []RouteConfig{}}
	for _, name := range names {
		rc, ok := rs[name]
		if !ok {
			return nil
		}
		st.RouteConfigs = append(st.RouteConfigs, rc)
	}
	for _, l := range ls {
		st.Listeners = append(st.Listeners, l)
	}
	sort.Slice(st.Listeners, func(i, j int) bool { return st.Listeners[i].Name < st.Listeners[j].Name })
	withServicePorts(st)
	return st
}

// ------------------------------------------------------------------------------ route selection

// choose returns the route Envoy would pick for the request, as the stand-in gateway does: the route
// configurations of the listeners serving that port (servicePort, else the listener's own port), the
// virtual host by domain (exact, then the longest wildcard suffix, then "*"), then the first route
// whose path and header matches hold.
func choose(st *State, host string, port uint32, path string, headers map[string]string) (*VirtualHost, *Route) {
	var rcs []RouteConfig
	for _, l := range st.Listeners {
		if l.ServicePort == port || (l.ServicePort == 0 && l.Port == port) {
			for _, name := range l.RouteConfigs {
				for _, rc := range st.RouteConfigs {
					if rc.Name == name {
						rcs = append(rcs, rc)
					}
				}
			}
		}
	}
	hostPort := fmt.Sprintf("%s:%d", host, port)
	var best *VirtualHost
	bestRank := -1
	for i := range rcs {
		for j := range rcs[i].VirtualHosts {
			vh := &rcs[i].VirtualHosts[j]
			for _, d := range vh.Domains {
				rank := -1
				switch {
				case d == host || d == hostPort:
					rank = 1 << 20
				case d == "*":
					rank = 0
				case strings.HasPrefix(d, "*") && (strings.HasSuffix(host, d[1:]) || strings.HasSuffix(hostPort, d[1:])):
					rank = len(d)
				}
				if rank > bestRank {
					best, bestRank = vh, rank
				}
			}
		}
	}
	if best == nil {
		return nil, nil
	}
	for k := range best.Routes {
		if matches(&best.Routes[k].Match, path, headers) {
			return best, &best.Routes[k]
		}
	}
	return best, nil
}

func fullMatch(re, s string) bool {
	r, err := regexp.Compile("^(?:" + re + ")$")
	return err == nil && r.MatchString(s)
}

func matches(m *Match, path string, headers map[string]string) bool {
	p := strings.SplitN(path, "?", 2)[0]
	cmp := func(s string) string {
		if m.CaseInsensitive {
			return strings.ToLower(s)
		}
		return s
	}
	switch {
	case m.Prefix != nil:
		if !strings.HasPrefix(cmp(p), cmp(*m.Prefix)) {
			return false
		}
	case m.Path != nil:
		if cmp(p) != cmp(*m.Path) {
			return false
		}
	case m.Regex != nil:
		if !fullMatch(*m.Regex, p) {
			return false
		}
	case m.PathSeparatedPrefix != nil:
		pre := cmp(*m.PathSeparatedPrefix)
		if cmp(p) != pre && !strings.HasPrefix(cmp(p), pre+"/") {
			return false
		}
	}
	for _, h := range m.Headers {
		v, present := headers[strings.ToLower(h.Name)]
		ok := present
		switch {
		case h.Exact != nil:
			ok = present && v == *h.Exact
		case h.Prefix != nil:
			ok = present && strings.HasPrefix(v, *h.Prefix)
		case h.Regex != nil:
			ok = present && fullMatch(*h.Regex, v)
		case h.Present != nil:
			ok = present == *h.Present
		}
		if ok == h.Invert {
			return false
		}
	}
	return true
}

// ------------------------------------------------------------------------------------- commands

type pairs map[string]string

func (p pairs) String() string { return fmt.Sprint(map[string]string(p)) }
func (p pairs) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("'%s' is not name=value", kv)
		}
		p[k] = v
	}
	return nil
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: cowsay-xds dump|watch|wait --address HOST:PORT --role gateway|sidecar --namespace NS [--labels k=v,...] [--pod NAME]
  wait also: --host HOST --port PORT [--path /] [--header k=v]... --cluster-contains TEXT --timeout 10s
  dump: one JSON document, what istiod pushes to that proxy; watch: one per line, each time it changes;
  wait: exit 0 once the route chosen for that request goes to a cluster whose name contains TEXT`)
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "cowsay-xds: "+format+"\n", a...)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "dump" && os.Args[1] != "watch" && os.Args[1] != "wait") {
		usage()
		if len(os.Args) >= 2 && (os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help") {
			os.Exit(0)
		}
		fail("the command is '%s'; allowed: dump, watch, wait", strings.Join(os.Args[1:min(2, len(os.Args))], ""))
	}
	cmd := os.Args[1]
	o := &options{labels: pairs{}, headers: pairs{}}
	// Parse errors are ours to print: one line, no usage text after it.
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.address, "address", os.Getenv("COWSAY_XDS_ADDRESS"), "istiod's plaintext xDS address (default $COWSAY_XDS_ADDRESS)")
	fs.StringVar(&o.role, "role", "gateway", "gateway (a router node) or sidecar")
	fs.StringVar(&o.namespace, "namespace", "", "the proxy's namespace")
	fs.StringVar(&o.pod, "pod", "", "the proxy's pod name (default: cowsay-xds-<role>-0)")
	fs.StringVar(&o.ip, "ip", "127.0.0.1", "the proxy's IP")
	fs.Var(pairs(o.labels), "labels", "the proxy's labels, k=v[,k=v]")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "dump, wait: give up after this long; watch: run this long (default for watch: 0, until killed)")
	fs.StringVar(&o.host, "host", "", "wait: the request's Host")
	fs.UintVar(&o.port, "port", 0, "wait: the Service port the request arrives on (80, 443)")
	fs.StringVar(&o.path, "path", "/", "wait: the request's path")
	fs.Var(pairs(o.headers), "header", "wait: a request header k=v (repeatable)")
	fs.StringVar(&o.clusterContains, "cluster-contains", "", "wait: text the chosen route's cluster name must contain")
	if err := fs.Parse(os.Args[2:]); errors.Is(err, flag.ErrHelp) {
		usage()
		return
	} else if err != nil {
		fail("%v", err)
	}
	if cmd == "watch" {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "timeout" })
		if !set {
			o.timeout = 0
		}
	}
	if fs.NArg() > 0 {
		fail("unexpected argument '%s'", fs.Arg(0))
	}
	if o.address == "" {
		fail("--address is empty (and COWSAY_XDS_ADDRESS is unset); allowed: HOST:PORT of istiod's plaintext xDS")
	}
	if o.role != "gateway" && o.role != "sidecar" {
		fail("--role is '%s'; allowed: gateway, sidecar", o.role)
	}
	if o.namespace == "" {
		fail("--namespace is empty; allowed: the proxy's namespace, a DNS label")
	}
	if o.pod == "" {
		o.pod = "cowsay-xds-" + o.role + "-0"
	}
	headers := map[string]string{}
	for k, v := range o.headers {
		headers[strings.ToLower(k)] = v
	}
	if cmd == "wait" {
		if o.host == "" || o.port == 0 || o.port > 65535 || o.clusterContains == "" {
			fail("wait needs --host, --port (1-65535) and --cluster-contains; got host '%s', port %d, cluster-contains '%s'", o.host, o.port, o.clusterContains)
		}
	}
	ctx := context.Background()
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	enc := json.NewEncoder(os.Stdout)
	var last *State
	var lastJSON string
	err := stream(ctx, o, func(st *State) bool {
		last = st
		switch cmd {
		case "dump":
			enc.SetIndent("", "  ")
			_ = enc.Encode(st)
			return true
		case "watch":
			b, _ := json.Marshal(st)
			if string(b) != lastJSON {
				lastJSON = string(b)
				fmt.Println(lastJSON)
			}
			return false
		default: // wait
			vh, r := choose(st, o.host, uint32(o.port), o.path, headers)
			// On stderr, each time the chosen route changes: the first line says the client is connected
			// and what the route is now (a caller timing a switch starts its clock after it).
			now := "no route"
			switch {
			case vh != nil && vh.RequireTLS != "":
				// Envoy redirects plain HTTP to https before it looks at any route (httpsRedirect).
				now, r = "requireTls "+vh.RequireTLS+": redirected to https", nil
			case r != nil && r.Redirect != nil:
				b, _ := json.Marshal(r.Redirect)
				now = "redirect " + string(b)
			case r != nil && r.DirectResponse != nil:
				now = fmt.Sprintf("direct response %d", r.DirectResponse.Status)
			case r != nil:
				b, _ := json.Marshal(r.Clusters)
				now = "clusters " + string(b)
			}
			if now != lastJSON {
				lastJSON = now
				fmt.Fprintf(os.Stderr, "cowsay-xds: %s:%d%s: %s\n", o.host, o.port, o.path, now)
			}
			if r == nil {
				return false
			}
			for _, c := range r.Clusters {
				if strings.Contains(c.Name, o.clusterContains) {
					_ = enc.Encode(r)
					return true
				}
			}
			return false
		}
	})
	if err == nil {
		return
	}
	if cmd == "watch" && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return
	}
	if cmd == "wait" && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		fmt.Fprintf(os.Stderr, "cowsay-xds: after %s no route for %s:%d%s goes to a cluster containing '%s'; the last state istiod pushed:\n",
			o.timeout, o.host, o.port, o.path, o.clusterContains)
		if last != nil {
			b, _ := json.MarshalIndent(last, "", "  ")
			fmt.Fprintln(os.Stderr, string(b))
		} else {
			fmt.Fprintln(os.Stderr, "(nothing: istiod sent no consistent state)")
		}
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "cowsay-xds: %s: %v\n", cmd, err)
	os.Exit(1)
}
