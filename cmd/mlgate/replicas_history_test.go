package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// The history check, after etcd's robustness tests: clients record every operation they send to two
// replicas (one of them killed and restarted meanwhile) with its invocation and return times, and
// porcupine searches for an order of the operations, consistent with those times, in which a small
// model of the registry gives every answer the clients got. If there is none, some client saw the
// registry in a state no sequential execution could have produced: a lost or duplicated write, a stale
// read, a version number given twice.

// histOp is what a recorded operation does.
type histOp int

const (
	opCreateVersion histOp = iota // model-versions/create with an automatic semver
	opGetVersion                  // model-versions/get by number
	opSetAlias                    // registered-models/alias (POST): set or move an alias
	opGetAlias                    // registered-models/alias (GET)
	opPutFile                     // package file PUT: create or replace
	opDeleteFile                  // package file DELETE
	opGetFile                     // package file GET
)

var histOpNames = [...]string{"create-version", "get-version", "set-alias", "get-alias", "put-file", "delete-file", "get-file"}

// histInput is an operation's input. key names the part of the registry it touches: "versions", an
// alias or a file path; operations on different keys are independent, so porcupine checks each key's
// operations on their own.
type histInput struct {
	op      histOp
	key     string
	seq     int64  // get-version, set-alias
	content string // put-file
}

// histOutput is an operation's answer. unknown: the request failed without an answer (its replica was
// killed), so it may or may not have taken effect; porcupine gets it with the end of the history as its
// return time, which lets it place the operation anywhere after its invocation, including after every
// other (that is, never).
type histOutput struct {
	unknown bool
	connErr error  // unknown because of this transport error
	found   bool   // get-*: the thing exists; delete-file: 204 (not 404)
	seq     int64  // create-version, get-alias
	semver  string // create-version, get-version
	content string // get-file
}

// histState is the model's state for one key; each key uses one field.
type histState struct {
	versions int64  // "versions": how many the model has (numbered 1..versions)
	alias    int64  // an alias: the version it points at, 0 for none
	content  string // a file: its content, "" for none
}

// histSemver is the automatic semver of version seq: the next minor after the highest (1.0.0, 1.1.0, …).
func histSemver(seq int64) string { return fmt.Sprintf("1.%d.0", seq-1) }

// histModel is the registry as porcupine checks it, starting with initialVersions versions, no alias
// and no file.
func histModel(initialVersions int64) porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range history {
				k := op.Input.(histInput).key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			var out [][]porcupine.Operation
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return histState{versions: initialVersions} },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(histState), input.(histInput), output.(histOutput)
			switch in.op {
			case opCreateVersion:
				next := s
				next.versions++
				return out.unknown || (out.seq == next.versions && out.semver == histSemver(next.versions)), next
			case opGetVersion:
				if out.unknown {
					return true, s
				}
				exists := in.seq >= 1 && in.seq <= s.versions
				return out.found == exists && (!exists || out.semver == histSemver(in.seq)), s
			case opSetAlias:
				next := s
				next.alias = in.seq
				return true, next
			case opGetAlias:
				return out.unknown || (out.found && out.seq == s.alias) || (!out.found && s.alias == 0), s
			case opPutFile:
				next := s
				next.content = in.content
				return true, next
			case opDeleteFile:
				next := s
				next.content = ""
				return out.unknown || out.found == (s.content != ""), next
			case opGetFile:
				return out.unknown || (out.found && out.content == s.content) || (!out.found && s.content == ""), s
			}
			return false, s
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(histInput), output.(histOutput)
			var arg string
			switch in.op {
			case opGetVersion, opSetAlias:
				arg = fmt.Sprintf("(%d)", in.seq)
			case opPutFile:
				arg = fmt.Sprintf("(%q)", in.content)
			}
			var res string
			switch {
			case out.unknown:
				res = "unknown (connection lost)"
			case in.op == opCreateVersion:
				res = fmt.Sprintf("%d %s", out.seq, out.semver)
			case in.op == opSetAlias || in.op == opPutFile:
				res = "ok"
			case !out.found:
				res = "not found"
			case in.op == opGetVersion:
				res = out.semver
			case in.op == opGetAlias:
				res = strconv.FormatInt(out.seq, 10)
			case in.op == opGetFile:
				res = strconv.Quote(out.content)
			default:
				res = "deleted"
			}
			return fmt.Sprintf("%s %s%s → %s", histOpNames[in.op], in.key, arg, res)
		},
		DescribeState: func(state any) string {
			s := state.(histState)
			return fmt.Sprintf("versions=%d alias=%d content=%q", s.versions, s.alias, s.content)
		},
	}
}

// checkHistory checks ops against the model within timeout. When they are not linearizable, or the
// check runs out of time, it writes porcupine's visualization to a file that outlives the test and
// returns an error naming it.
func checkHistory(ops []porcupine.Operation, initialVersions int64, timeout time.Duration) error {
	model := histModel(initialVersions)
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	if res == porcupine.Ok {
		return nil
	}
	f, err := os.CreateTemp("", "mlgate-history-*.html")
	if err != nil {
		return fmt.Errorf("history check: %s, and no file for the visualization: %v", res, err)
	}
	f.Close()
	if err := porcupine.VisualizePath(model, info, f.Name()); err != nil {
		return fmt.Errorf("history check: %s, and the visualization failed: %v", res, err)
	}
	if res == porcupine.Unknown {
		return fmt.Errorf("history check of %d operations did not finish in %v; the history is in %s", len(ops), timeout, f.Name())
	}
	// Name the keys whose operations alone are not linearizable, to say where to look.
	var keys []string
	for _, part := range model.Partition(ops) {
		if porcupine.CheckOperationsTimeout(model, part, timeout) == porcupine.Illegal {
			keys = append(keys, part[0].Input.(histInput).key)
		}
	}
	return fmt.Errorf("the history of %d operations is not linearizable (the operations on %v): open %s in a browser to see the operations no order explains",
		len(ops), keys, f.Name())
}

// historyRecorder collects operations from many clients, with times since its start.
type historyRecorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (h *historyRecorder) now() int64 { return int64(time.Since(h.start)) }

// add records an operation; an unknown one gets its return time at the end (see histOutput).
func (h *historyRecorder) add(client int, in histInput, call int64, out histOutput, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// history returns the operations, the unknown ones returning after every other.
func (h *historyRecorder) history() (ops []porcupine.Operation, unknown int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var end int64
	for _, op := range h.ops {
		end = max(end, op.Return)
	}
	for _, op := range h.ops {
		if op.Output.(histOutput).unknown {
			op.Return = end + 1
			unknown++
		}
		ops = append(ops, op)
	}
	return ops, unknown
}

// The history test's shape: clients, and operations before the kill and after the restart.
const (
	histClients   = 8
	histOpsBefore = 600
	histOpsAfter  = 600
	histModelName = "hist"
	histFiles     = 3
	histAliases   = 2
)

// histClient sends the history test's operations through the replicas.
type histClient struct {
	hc     *http.Client
	runID  string
	maxSeq *atomic.Int64 // highest version number any client was answered
}

// send performs one operation through base and returns its answer; err is an answer the model does not
// cover (a 500, a malformed body), which fails the test on its own.
func (c *histClient) send(base string, in histInput) (histOutput, error) {
	mlflow := base + "/api/2.0/mlflow/"
	file := base + pkgURL("", "default", "hist-files", "1.0.0", in.key)
	var (
		method, u string
		body      []byte
	)
	switch in.op {
	case opCreateVersion:
		method, u = http.MethodPost, mlflow+"model-versions/create"
		body, _ = json.Marshal(map[string]any{"name": histModelName, "source": "runs:/" + c.runID + "/model", "run_id": c.runID})
	case opGetVersion:
		method, u = http.MethodGet, mlflow+"model-versions/get?"+url.Values{"name": {histModelName}, "version": {strconv.FormatInt(in.seq, 10)}}.Encode()
	case opSetAlias:
		method, u = http.MethodPost, mlflow+"registered-models/alias"
		body, _ = json.Marshal(map[string]any{"name": histModelName, "alias": in.key, "version": strconv.FormatInt(in.seq, 10)})
	case opGetAlias:
		method, u = http.MethodGet, mlflow+"registered-models/alias?"+url.Values{"name": {histModelName}, "alias": {in.key}}.Encode()
	case opPutFile:
		method, u, body = http.MethodPut, file, []byte(in.content)
	case opDeleteFile:
		method, u = http.MethodDelete, file
	case opGetFile:
		method, u = http.MethodGet, file
	}
	a, err := doHTTPResp(c.hc, method, u, body)
	if err != nil {
		if isConnError(err) {
			return histOutput{unknown: true, connErr: fmt.Errorf("%s %s: %w", method, u, err)}, nil
		}
		return histOutput{}, fmt.Errorf("%s %s: %w", method, u, err)
	}
	unexpected := fmt.Errorf("%s %s: %d %s", method, u, a.code, a.body)
	var mv struct {
		ModelVersion struct {
			Version string `json:"version"`
			Tags    []kv   `json:"tags"`
		} `json:"model_version"`
	}
	switch in.op {
	case opCreateVersion, opGetVersion, opGetAlias:
		if a.code != http.StatusOK {
			code := mlflowErrorCode(a.body)
			notFound := (in.op == opGetVersion && a.code == http.StatusNotFound && code == "RESOURCE_DOES_NOT_EXIST") ||
				(in.op == opGetAlias && a.code == http.StatusBadRequest && code == "INVALID_PARAMETER_VALUE")
			if !notFound {
				return histOutput{}, unexpected
			}
			return histOutput{}, nil
		}
		if err := json.Unmarshal(a.body, &mv); err != nil {
			return histOutput{}, unexpected
		}
		out := histOutput{found: true}
		if out.seq, err = strconv.ParseInt(mv.ModelVersion.Version, 10, 64); err != nil {
			return histOutput{}, unexpected
		}
		for _, tag := range mv.ModelVersion.Tags {
			if tag.Key == "mlgate.semver" { // the synthetic tag that shows a version's semver
				out.semver = tag.Value
			}
		}
		if in.op == opCreateVersion {
			for {
				seen := c.maxSeq.Load()
				if out.seq <= seen || c.maxSeq.CompareAndSwap(seen, out.seq) {
					break
				}
			}
		}
		return out, nil
	case opSetAlias, opPutFile:
		if want := map[histOp]int{opSetAlias: http.StatusOK, opPutFile: http.StatusCreated}[in.op]; a.code != want {
			return histOutput{}, unexpected
		}
		return histOutput{}, nil
	case opDeleteFile:
		switch a.code {
		case http.StatusNoContent:
			return histOutput{found: true}, nil
		case http.StatusNotFound:
			return histOutput{}, nil
		}
		return histOutput{}, unexpected
	default: // opGetFile
		switch {
		case a.code == http.StatusOK:
			return histOutput{found: true, content: string(a.body)}, nil
		case a.code == http.StatusNotFound && strings.Contains(string(a.body), "not found in package"):
			return histOutput{}, nil
		}
		return histOutput{}, unexpected
	}
}

// next draws a client's next operation.
func (c *histClient) next(rng *rand.Rand, client, k int) histInput {
	alias := fmt.Sprintf("alias%d", rng.IntN(histAliases))
	path := fmt.Sprintf("f%d.txt", rng.IntN(histFiles))
	top := c.maxSeq.Load()
	switch n := rng.IntN(100); {
	case n < 10:
		return histInput{op: opCreateVersion, key: "versions"}
	case n < 25:
		// Up to one past the highest known, which may or may not exist yet.
		return histInput{op: opGetVersion, key: "versions", seq: 1 + rng.Int64N(top+1)}
	case n < 38:
		return histInput{op: opSetAlias, key: alias, seq: 1 + rng.Int64N(top)}
	case n < 52:
		return histInput{op: opGetAlias, key: alias}
	case n < 67:
		return histInput{op: opPutFile, key: path, content: fmt.Sprintf("c%d-%d", client, k)}
	case n < 77:
		return histInput{op: opDeleteFile, key: path}
	default:
		return histInput{op: opGetFile, key: path}
	}
}

// TestReplicasHistoryIsLinearizable: eight clients send registry operations (versions with automatic
// semvers, an alias set and moved, package files replaced and deleted, and reads of each) to two
// replicas alternately; replica B is SIGKILLed after 600 operations and started again, and 600 more
// follow. Requests cut by the kill are kept as operations of unknown outcome. porcupine must find the
// history linearizable against histModel.
func TestReplicasHistoryIsLinearizable(t *testing.T) {
	r := startReplicas(t, "--log-level", "warn")
	hc := newPoolClient(2 * histClients)
	a := &mlflowClient{t: t, base: r.base(0)}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	a.ok(http.MethodPost, "experiments/create", map[string]any{"name": "hist-runs"}, &exp)
	run := a.createRun(exp.ExperimentID, "source")
	a.putArtifact(run, "model/MLmodel", strings.NewReader("flavors: {}\n"), 12)
	a.ok(http.MethodPost, "registered-models/create", map[string]any{"name": histModelName}, nil)
	var maxSeq atomic.Int64
	c := &histClient{hc: hc, runID: run.RunID, maxSeq: &maxSeq}
	if out, err := c.send(r.base(0), histInput{op: opCreateVersion}); err != nil || out.seq != 1 || out.semver != histSemver(1) {
		t.Fatalf("first version: %+v %v", out, err)
	}
	// The files' package version exists before the clients start, so that a delete or a read of a file
	// is about the file, not the version.
	if code := put(t, r.base(0)+pkgURL("", "default", "hist-files", "1.0.0", "seed.txt"), []byte("seed")); code != http.StatusCreated {
		t.Fatalf("seed file: %d", code)
	}

	rec := &historyRecorder{start: time.Now()}
	var total, afterRestart, onRestartedB atomic.Int64
	var stop, failed, restarted atomic.Bool
	errs := make([]error, histClients)
	var wg sync.WaitGroup
	for client := range histClients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(client), uint64(time.Now().UnixNano())))
			for k := 0; !stop.Load(); k++ {
				replica := (client + k) % 2
				if !r.isUp(replica) {
					replica = 0
				}
				wasRestarted := restarted.Load()
				in := c.next(rng, client, k)
				call := rec.now()
				out, err := c.send(r.base(replica), in)
				ret := rec.now()
				if err == nil && out.unknown && replica == 0 {
					err = fmt.Errorf("replica A, never killed, did not answer: %v", out.connErr)
				}
				if err != nil {
					errs[client] = err
					failed.Store(true)
					return
				}
				rec.add(client, in, call, out, ret)
				total.Add(1)
				if wasRestarted {
					afterRestart.Add(1)
					if replica == 1 {
						onRestartedB.Add(1)
					}
				}
			}
		})
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		poll.Until(t, 2*time.Minute, what, func() bool { return failed.Load() || cond() })
	}
	until(fmt.Sprintf("%d operations before the kill", histOpsBefore), func() bool { return total.Load() >= histOpsBefore })
	r.kill(1)
	r.start(1)
	restarted.Store(true)
	until(fmt.Sprintf("%d operations after the restart", histOpsAfter), func() bool {
		return afterRestart.Load() >= histOpsAfter && onRestartedB.Load() >= histOpsAfter/4
	})
	stop.Store(true)
	wg.Wait()
	for client, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", client, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	ops, unknown := rec.history()
	t.Logf("%d operations, %d of unknown outcome (cut by the kill), %d versions created", len(ops), unknown, maxSeq.Load())
	start := time.Now()
	if err := checkHistory(ops, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("linearizable, checked in %v", time.Since(start))
}

// The model must be able to fail: hand-made histories that no order explains are refused, with the
// visualization written, and ones that an order explains, including through operations of unknown
// outcome, are accepted.
func TestHistoryModel(t *testing.T) {
	op := func(client int, in histInput, call, ret int64, out histOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
	}
	put := histInput{op: opPutFile, key: "f", content: "x"}
	get := histInput{op: opGetFile, key: "f"}
	create := histInput{op: opCreateVersion, key: "versions"}
	setAlias := histInput{op: opSetAlias, key: "a", seq: 1}
	getAlias := histInput{op: opGetAlias, key: "a"}
	del := histInput{op: opDeleteFile, key: "f"}
	unknown := histOutput{unknown: true}
	for _, tc := range []struct {
		name         string
		ops          []porcupine.Operation
		linearizable bool
	}{
		{"a read after a write returns misses it", []porcupine.Operation{
			op(0, put, 0, 10, histOutput{}), op(1, get, 20, 30, histOutput{})}, false},
		{"a read concurrent with a write may miss it", []porcupine.Operation{
			op(0, put, 0, 10, histOutput{}), op(1, get, 5, 15, histOutput{})}, true},
		{"a read concurrent with a write may see it", []porcupine.Operation{
			op(0, put, 0, 10, histOutput{}), op(1, get, 5, 15, histOutput{found: true, content: "x"})}, true},
		{"a version number given twice", []porcupine.Operation{
			op(0, create, 0, 10, histOutput{found: true, seq: 2, semver: "1.1.0"}),
			op(1, create, 5, 15, histOutput{found: true, seq: 2, semver: "1.1.0"})}, false},
		{"an automatic semver that skips one", []porcupine.Operation{
			op(0, create, 0, 10, histOutput{found: true, seq: 2, semver: "1.2.0"})}, false},
		{"a version read as missing after its creation returned", []porcupine.Operation{
			op(0, create, 0, 10, histOutput{found: true, seq: 2, semver: "1.1.0"}),
			op(1, histInput{op: opGetVersion, key: "versions", seq: 2}, 20, 30, histOutput{})}, false},
		{"a lost alias", []porcupine.Operation{
			op(0, setAlias, 0, 10, histOutput{}), op(1, getAlias, 20, 30, histOutput{})}, false},
		{"a deleted file read back", []porcupine.Operation{
			op(0, put, 0, 10, histOutput{}), op(0, del, 20, 30, histOutput{found: true}),
			op(1, get, 40, 50, histOutput{found: true, content: "x"})}, false},
		{"a delete of a file that exists answered 404", []porcupine.Operation{
			op(0, put, 0, 10, histOutput{}), op(1, del, 20, 30, histOutput{})}, false},
		{"a write of unknown outcome that happened", []porcupine.Operation{
			op(0, put, 0, 1000, unknown), op(1, get, 20, 30, histOutput{found: true, content: "x"})}, true},
		{"a write of unknown outcome that did not happen", []porcupine.Operation{
			op(0, put, 0, 1000, unknown), op(1, get, 20, 30, histOutput{})}, true},
		{"a write of unknown outcome seen, then unseen", []porcupine.Operation{
			op(0, put, 0, 1000, unknown), op(1, get, 20, 30, histOutput{found: true, content: "x"}),
			op(1, get, 40, 50, histOutput{})}, false},
		{"a version created by a request of unknown outcome", []porcupine.Operation{
			op(0, create, 0, 1000, unknown), op(1, create, 20, 30, histOutput{found: true, seq: 3, semver: "1.2.0"})}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHistory(tc.ops, 1, 10*time.Second)
			if tc.linearizable {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			m := regexp.MustCompile(`open (\S+\.html) in a browser`).FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("the error names no visualization: %v", err)
			}
			defer os.Remove(m[1])
			if fi, err := os.Stat(m[1]); err != nil || fi.Size() == 0 {
				t.Fatalf("visualization %s: %v", m[1], err)
			}
		})
	}
}

// An operation of unknown outcome returns after every other one in the history given to porcupine,
// whatever time its client gave up; the others keep their times.
func TestHistoryRecorderUnknownReturnsLast(t *testing.T) {
	rec := &historyRecorder{}
	rec.add(0, histInput{op: opPutFile, key: "f", content: "x"}, 0, histOutput{unknown: true}, 5)
	rec.add(1, histInput{op: opGetFile, key: "f"}, 10, histOutput{found: true, content: "x"}, 20)
	ops, unknown := rec.history()
	if unknown != 1 || len(ops) != 2 || ops[0].Return != 21 || ops[1].Return != 20 {
		t.Fatalf("%d unknown, ops %+v", unknown, ops)
	}
	// Without the move, the read would precede the write that it saw.
	if err := checkHistory(ops, 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
