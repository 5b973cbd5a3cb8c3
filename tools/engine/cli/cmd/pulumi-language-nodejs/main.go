// Command pulumi-language-nodejs is a small Node.js language host for the Pulumi engine.
//
// Why it exists: the upstream host (module github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3)
// is not served by the Go module proxy this project can reach, at any version. This host implements the
// parts of the LanguageRuntime gRPC protocol that `pulumi up/preview/destroy` and policy packs need:
//
//   - Run: starts `node <@pulumi/pulumi/cmd/run> --monitor … <entry point>` in the program directory,
//     with PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS and the TypeScript options in the environment.
//   - RunPlugin: starts `node <@pulumi/pulumi/cmd/run-plugin> <dir> <args>` (used for policy packs).
//   - GetRequiredPackages/GetRequiredPlugins: reads the "pulumi" section of the package.json files
//     under node_modules, so the engine knows which resource plugins (and versions) the program uses.
//   - InstallDependencies: `npm install` (only when the CLI asks for it, e.g. `pulumi install`).
//   - Handshake, GetPluginInfo, About, GetProgramDependencies.
//
// Code generation (GenerateProgram/Project/Package, Pack, Template) is not implemented.
//
// Runtime options honoured (Pulumi.yaml `runtime.options`): typescript (default true), tsconfig,
// nodeargs (space separated). The node binary is the first `node` on PATH.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	pbempty "google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/grpc"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Exit code @pulumi/pulumi's run script uses after it has already shown the user an error.
const exitAfterUserMessage = 32

// How often the host checks that the engine is still there. Upstream hosts check every five minutes;
// a killed `pulumi` then leaves them running that long. This host, and the program it runs, go in seconds.
const engineCheckInterval = 2 * time.Second

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	watchOnce sync.Once

	mu            sync.Mutex
	engineAddress string
	tracing       string
}

type options struct {
	typescript bool
	tsconfig   string
	nodeargs   []string
}

func parseOptions(info *pulumirpc.ProgramInfo) options {
	o := options{typescript: true}
	if info == nil || info.GetOptions() == nil {
		return o
	}
	m := info.GetOptions().AsMap()
	switch v := m["typescript"].(type) {
	case bool:
		o.typescript = v
	case string:
		o.typescript = v != "false"
	}
	if v, ok := m["tsconfig"].(string); ok {
		o.tsconfig = v
	}
	if v, ok := m["nodeargs"].(string); ok {
		o.nodeargs = strings.Fields(v)
	}
	return o
}

func (o options) env() []string {
	var env []string
	if o.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if o.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+o.tsconfig)
	}
	return env
}

// resolveModule asks node where a module (e.g. "@pulumi/pulumi/cmd/run") resolves from dir, so that the
// @pulumi/pulumi installed with the program is used.
func resolveModule(nodeBin, module, dir string) (string, error) {
	script := fmt.Sprintf("console.log(require.resolve(%q, {paths: [%q]}))", module, dir)
	cmd := exec.Command(nodeBin, "-e", script)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return "", fmt.Errorf("could not find %s from %s (is @pulumi/pulumi installed? run npm install): %v %s",
			module, dir, err, msg)
	}
	return strings.TrimSpace(string(out)), nil
}

func (h *host) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
		h.watchEngine(h.engineAddress)
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

// watchEngine exits the host once the engine stops answering (a `pulumi` killed with SIGKILL cannot
// stop its plugins), so nothing is left running.
func (h *host) watchEngine(addr string) {
	h.watchOnce.Do(func() {
		err := rpcutil.Healthcheck(context.Background(), addr, engineCheckInterval, func() {
			fmt.Fprintln(os.Stderr, "pulumi-language-nodejs: the engine is gone; exiting")
			os.Exit(1)
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: cannot watch the engine at %s: %v\n", addr, err)
		}
	})
}

func (h *host) GetPluginInfo(ctx context.Context, _ *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// packageJSON is the subset of a package.json this host reads.
type packageJSON struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Dependencies map[string]string `json:"dependencies"`
	Pulumi       *struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	} `json:"pulumi"`
}

func readPackageJSON(path string) (*packageJSON, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p packageJSON
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// findNodeModules returns the nearest node_modules directory at or above dir.
func findNodeModules(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		nm := filepath.Join(d, "node_modules")
		if st, err := os.Stat(nm); err == nil && st.IsDir() {
			return nm
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// installedPackages lists the package.json files of the packages in node_modules (one level, and one level
// inside @scope directories), keyed by path.
func installedPackages(nodeModules string) map[string]*packageJSON {
	out := map[string]*packageJSON{}
	if nodeModules == "" {
		return out
	}
	entries, _ := os.ReadDir(nodeModules)
	for _, e := range entries {
		if !e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		dirs := []string{filepath.Join(nodeModules, e.Name())}
		if strings.HasPrefix(e.Name(), "@") {
			dirs = nil
			scoped, _ := os.ReadDir(filepath.Join(nodeModules, e.Name()))
			for _, s := range scoped {
				dirs = append(dirs, filepath.Join(nodeModules, e.Name(), s.Name()))
			}
		}
		for _, d := range dirs {
			p := filepath.Join(d, "package.json")
			if pkg, err := readPackageJSON(p); err == nil {
				out[p] = pkg
			}
		}
	}
	return out
}

func requiredPlugins(programDir string) []*pulumirpc.PluginDependency {
	pkgs := installedPackages(findNodeModules(programDir))
	seen := map[string]bool{}
	var deps []*pulumirpc.PluginDependency
	for _, pkg := range pkgs {
		if pkg.Pulumi == nil || !pkg.Pulumi.Resource {
			continue
		}
		name := pkg.Pulumi.Name
		if name == "" {
			name = strings.TrimPrefix(pkg.Name, "@pulumi/")
		}
		ver := pkg.Pulumi.Version
		if ver == "" {
			ver = pkg.Version
		}
		if !strings.HasPrefix(ver, "v") {
			ver = "v" + ver
		}
		key := name + "@" + ver
		if seen[key] {
			continue
		}
		seen[key] = true
		deps = append(deps, &pulumirpc.PluginDependency{
			Name: name, Kind: "resource", Version: ver, Server: pkg.Pulumi.Server,
		})
	}
	sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
	return deps
}

func (h *host) GetRequiredPlugins(ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	dir := req.GetInfo().GetProgramDirectory()
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: requiredPlugins(dir)}, nil
}

func (h *host) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	var pkgs []*pulumirpc.PackageDependency
	for _, p := range requiredPlugins(req.GetInfo().GetProgramDirectory()) {
		pkgs = append(pkgs, &pulumirpc.PackageDependency{
			Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server,
		})
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir := req.GetInfo().GetProgramDirectory()
	var deps []*pulumirpc.DependencyInfo
	for _, pkg := range installedPackages(findNodeModules(dir)) {
		if pkg.Name != "" {
			deps = append(deps, &pulumirpc.DependencyInfo{Name: pkg.Name, Version: pkg.Version})
		}
	}
	sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	resp := &pulumirpc.AboutResponse{Metadata: map[string]string{}}
	if nodeBin, err := exec.LookPath("node"); err == nil {
		resp.Executable = nodeBin
		if out, err := exec.Command(nodeBin, "--version").Output(); err == nil {
			resp.Version = strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		}
	}
	return resp, nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm not found on PATH: %w", err)
	}
	fmt.Fprintln(stdout, "Installing dependencies (npm install)...")
	cmd := exec.Command(npm, "install")
	cmd.Dir = req.GetInfo().GetProgramDirectory()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm install: %w", err)
	}
	return closer.Close()
}

func configEnv(req *pulumirpc.RunRequest) ([]string, error) {
	// @pulumi/pulumi accepts both "<ns>:<key>" and the older "<ns>:config:<key>"; like upstream, pass the
	// older form so any SDK version understands it.
	cfg := map[string]string{}
	for k, v := range req.GetConfig() {
		key, err := config.ParseKey(k)
		if err != nil {
			return nil, err
		}
		cfg[key.Namespace()+":config:"+key.Name()] = v
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	return []string{"PULUMI_CONFIG=" + string(cfgJSON), "PULUMI_CONFIG_SECRET_KEYS=" + string(secretJSON)}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	programDir := info.GetProgramDirectory()
	if programDir == "" {
		programDir = req.GetPwd()
	}
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = "."
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "node not found on PATH: " + err.Error()}, nil
	}
	runPath, err := resolveModule(nodeBin, "@pulumi/pulumi/cmd/run", programDir)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	opts := parseOptions(info)

	h.mu.Lock()
	engine, tracing := h.engineAddress, h.tracing
	h.mu.Unlock()

	args := append([]string{}, opts.nodeargs...)
	args = append(args, runPath)
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", engine)
	add("organization", req.GetOrganization())
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", programDir)
	add("root-directory", info.GetRootDirectory())
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	add("query-mode", strconv.FormatBool(req.GetQueryMode()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("tracing", tracing)
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	cfgEnv, err := configEnv(req)
	if err != nil {
		return &pulumirpc.RunResponse{Error: "failed to serialize configuration: " + err.Error()}, nil
	}
	cmd := exec.CommandContext(ctx, nodeBin, args...)
	cmd.Dir = programDir
	cmd.Env = append(append(os.Environ(), cfgEnv...), opts.env()...)
	// Wrap the writers so exec copies through a goroutine: node may set its stdio non-blocking.
	cmd.Stdout = struct{ io.Writer }{os.Stdout}
	cmd.Stderr = struct{ io.Writer }{os.Stderr}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() == exitAfterUserMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d",
				ee.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: "Problem executing program (could not run node): " + err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("node not found on PATH: %w", err)
	}
	dir := req.GetInfo().GetProgramDirectory()
	runPath, err := resolveModule(nodeBin, "@pulumi/pulumi/cmd/run-plugin", dir)
	if err != nil {
		return err
	}
	opts := parseOptions(req.GetInfo())
	args := append([]string{runPath}, opts.nodeargs...)
	args = append(args, dir)
	args = append(args, req.GetArgs()...)
	cmd := exec.Command(nodeBin, args...)
	cmd.Dir = req.GetPwd()
	if req.GetKind() == "analyzer" || cmd.Dir == "" {
		// A policy pack (@pulumi/policy's PolicyPack) reads its version from ./package.json, so it must
		// start in its own directory, not in the stack's program directory the engine passes as Pwd.
		cmd.Dir = dir
	}
	cmd.Env = append(append([]string{}, req.GetEnv()...), opts.env()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("Program exited with non-zero exit code: %d", ee.ExitCode())
		}
		return fmt.Errorf("Problem executing plugin program (could not run node): %w", err)
	}
	return closer.Close()
}

func main() {
	// The engine starts language hosts as `pulumi-language-nodejs [flags] <engine address>`. Accept the
	// flags the upstream host knows so that none of them is an error; the ones that matter are read from
	// the RunRequest's program info instead.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	tracing := fs.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	_ = fs.String("root", "", "Project root path")
	_ = fs.Bool("typescript", true, "Use ts-node at runtime (prefer Pulumi.yaml runtime options)")
	_ = fs.String("tsconfig", "", "Path to tsconfig.json (prefer Pulumi.yaml runtime options)")
	_ = fs.String("nodeargs", "", "Arguments for node (prefer Pulumi.yaml runtime options)")
	_ = fs.String("packagemanager", "", "Package manager (only npm is supported here)")
	_ = fs.Bool("force-tsc", false, "unused")
	_ = fs.Bool("logtostderr", false, "unused")
	_ = fs.Bool("logflow", false, "unused")
	_ = fs.Int("v", 0, "unused")
	_ = fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if f := fs.Lookup("version"); f != nil && f.Value.String() == "true" {
		fmt.Println(version.Version)
		return
	}

	h := &host{tracing: *tracing}
	if fs.NArg() > 0 {
		h.engineAddress = fs.Arg(0)
		h.watchEngine(h.engineAddress)
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal: could not start language host RPC server: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from our first line of output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "fatal: language host RPC server stopped: %v\n", err)
		os.Exit(1)
	}
}
