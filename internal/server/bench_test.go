package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-iot/bulwark/internal/agent/journal"
	"github.com/bulwark-iot/bulwark/internal/api"
	"github.com/bulwark-iot/bulwark/internal/events"
	"github.com/bulwark-iot/bulwark/internal/server/servertest"
	"github.com/bulwark-iot/bulwark/internal/store"
)

// TestMain runs the test binary as BenchmarkIngest's load generator when
// waitAlerter waits until the alerter has read every stored event of
// the devices.
func waitAlerter(b *testing.B, st *store.Store, ids []string) {
	b.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Minute)
	for _, id := range ids {
		last, err := st.ListEvents(ctx, store.EventFilter{DeviceID: id, Limit: 1})
		if err != nil || len(last) == 0 {
			b.Fatalf("newest event of %s: %v", id, err)
		}
		for {
			cur, err := st.AlertCursor(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if cur >= last[0].ID {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("alerter has read %s up to event %d of %d", id, cur, last[0].ID)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// loadgenEnv names a plan (see runLoadgen), and as the tests otherwise.
func TestMain(m *testing.M) {
	if plan := os.Getenv(loadgenEnv); plan != "" {
		if err := runLoadgen(plan); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkCheckin measures the whole check-in path over real mutual TLS
// on kept-alive HTTP/2 connections: device authentication, validation,
// the group-committed SQLite write and the pending-command lookup. Each
// parallel worker is its own enrolled device.
func BenchmarkCheckin(b *testing.B) {
	ts := servertest.Start(b, servertest.Options{})
	const devices = 64
	tok := ts.EnrollToken(b, devices, "")
	devs := make([]*device, devices)
	for i := range devs {
		devs[i] = enroll(b, ts, tok, "bench")
		if _, err := checkin(devs[i], "bench"); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(16) // 32 concurrent devices on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := devs[int(next.Add(1)-1)%devices]
		for pb.Next() {
			if _, err := checkin(d, "bench"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkins/s")
}

// benchBatches builds n consecutive batches of 500 journal records for
// device id, chained as the agent's journal chains them: outbound TCP
// connections to 198.51.100.20.
func benchBatches(tb testing.TB, id string, n int) [][]api.EventRecord {
	return benchBatchesTo(tb, id, n, func(uint64) string { return "198.51.100.20" })
}

// benchBatchesTo is benchBatches with the destination address of the
// connection with each seq chosen by dst.
func benchBatchesTo(tb testing.TB, id string, n int, dst func(seq uint64) string) [][]api.EventRecord {
	at := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	out := make([][]api.EventRecord, n)
	prev := ""
	seq := uint64(0)
	for i := range out {
		out[i] = make([]api.EventRecord, api.MaxEventBatch)
		for k := range out[i] {
			seq++
			ev, err := events.New(events.TypeNetConnection, id, events.SeverityInformational, at.Add(time.Duration(seq)*time.Millisecond),
				events.NetConnection{Protocol: "tcp", Direction: "outbound", SrcIP: "192.0.2.10", SrcPort: int(seq % 60000), DstIP: dst(seq), DstPort: 443,
					CommunityID: "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", Process: &events.ProcessRef{PID: 812, Path: "/usr/bin/curl", User: "app"}})
			if err != nil {
				tb.Fatal(err)
			}
			ev.Seq = seq
			data, err := ev.Marshal()
			if err != nil {
				tb.Fatal(err)
			}
			h := journal.RecordHash(seq, prev, data)
			out[i][k] = api.EventRecord{Seq: seq, PrevHash: prev, Hash: h, Event: data}
			prev = h
		}
	}
	return out
}

// processCPU is the user+system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchIndicators is the size of the indicator set BenchmarkIngest loads.
const benchIndicators = 1_000_000

// loadBenchIndicators imports benchIndicators indicators through the
// admin API: 999,000 addresses 10.a.b.c and 1,000 prefixes 172.x.y.0/24.
func loadBenchIndicators(b *testing.B, ts *servertest.Server) {
	var list bytes.Buffer
	for i := 0; i < benchIndicators-1000; i++ {
		fmt.Fprintf(&list, "10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
	}
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&list, "172.%d.%d.0/24\n", 16+i/256, i%256)
	}
	var res api.IoCImportResult
	if code := importIoC(b, ts, "name=million", list.Bytes(), &res); code != 200 || res.Source.Indicators != benchIndicators {
		b.Fatalf("importing indicators: %d %+v", code, res.Source)
	}
}

// benchHitEvery is how often (in events) a benchmark connection goes to
// an address on the indicator list: 0.1 % of them, half to listed
// addresses and half into listed prefixes.
const benchHitEvery = 1000

func benchDst(seq uint64) string {
	switch {
	case seq%(2*benchHitEvery) == 0:
		return fmt.Sprintf("10.%d.%d.%d", (seq>>16)%15, (seq>>8)&255, seq&255) // listed (i < 999,000)
	case seq%benchHitEvery == 0:
		return fmt.Sprintf("172.%d.%d.%d", 16+seq%3, seq%256, 1+seq%250) // in a listed /24
	}
	return fmt.Sprintf("198.51.%d.%d", 100+seq%20, seq%256) // not listed
}

// BenchmarkIngest measures security-event ingestion on SQLite in batches
// of 500 events with 1,000,000 indicators of compromise loaded, which
// every connection event is matched against.
//
// "http" is the whole device API path over mutual TLS on kept-alive
// HTTP/2 connections: strict decoding and schema validation of every
// event, hash and chain checks, the store write (acknowledged after the
// commit), IoC matching (0.1 % of the connections hit, each raising an
// ioc.match event and an alert) and the alerter that reads stored events
// back. The load (8 devices, each sending its batches one after another,
// bodies encoded beforehand as the agent encodes them) comes from a
// separate process, so cpu-µs/event is the server's CPU time alone
// (loadgen-cpu-µs/event is the generator's).
//
// "store" is the store write alone (IngestEvents, one transaction per
// batch).
func BenchmarkIngest(b *testing.B) {
	ts := servertest.Start(b, servertest.Options{})
	loadBenchIndicators(b, ts)
	devices := 8 // BULWARK_BENCH_INGEST_DEVICES sets another number
	if v, err := strconv.Atoi(os.Getenv("BULWARK_BENCH_INGEST_DEVICES")); err == nil && v > 0 && v <= 200 {
		devices = v
	}
	tok := ts.EnrollToken(b, 1000, "")
	round, iocHits := 0, 0
	b.Run("http", func(b *testing.B) {
		round++
		dir := b.TempDir()
		plan := loadgenPlan{URL: ts.URL, CA: string(ts.CAPEM)}
		var ids []string
		per := (b.N + devices - 1) / devices
		for i := 0; i < devices; i++ {
			d := enroll(b, ts, tok, fmt.Sprintf("bench-%d-%d", round, i))
			key, err := x509.MarshalPKCS8PrivateKey(d.key)
			if err != nil {
				b.Fatal(err)
			}
			pd := loadgenDevice{Cert: d.cert.Certificate[0], Key: key}
			n := b.N / devices
			if i < b.N%devices {
				n++
			}
			if n > 0 {
				ids = append(ids, d.id)
			}
			for k, recs := range benchBatchesTo(b, d.id, per, benchDst)[:n] {
				body, err := json.Marshal(&api.EventBatch{Records: recs})
				if err != nil {
					b.Fatal(err)
				}
				f := filepath.Join(dir, fmt.Sprintf("%d-%d.json", i, k))
				if err := os.WriteFile(f, body, 0o600); err != nil {
					b.Fatal(err)
				}
				pd.Bodies = append(pd.Bodies, f)
			}
			plan.Devices = append(plan.Devices, pd)
		}
		planFile := filepath.Join(dir, "plan.json")
		pj, _ := json.Marshal(plan)
		if err := os.WriteFile(planFile, pj, 0o600); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), loadgenEnv+"="+planFile)
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		out := bufio.NewScanner(stdout)
		if !out.Scan() || out.Text() != "ready" {
			cmd.Wait()
			b.Fatalf("load generator did not start: %q", out.Text())
		}
		b.ResetTimer()
		cpu0 := processCPU()
		io.WriteString(stdin, "go\n")
		var last string
		for out.Scan() {
			last = out.Text()
		}
		err := cmd.Wait()
		if err == nil {
			// The alerter reads stored events back asynchronously: the
			// clock runs until it has caught up.
			waitAlerter(b, ts.Store(), ids)
		}
		b.StopTimer()
		cpu := processCPU() - cpu0
		genCPU, ok := strings.CutPrefix(last, "done ")
		ns, perr := strconv.ParseInt(genCPU, 10, 64)
		if err != nil || !ok || perr != nil {
			b.Fatalf("load generator: %v (last line %q)", err, last)
		}
		// Every hit was matched and stored before its batch was
		// acknowledged.
		want := 0
		for i := 0; i < devices; i++ {
			want += len(plan.Devices[i].Bodies) * api.MaxEventBatch / benchHitEvery
		}
		hits, err := ts.Store().ListEvents(context.Background(), store.EventFilter{Type: events.TypeIoCMatch, Limit: 5000})
		if err != nil {
			b.Fatal(err)
		}
		if got := len(hits) - iocHits; got != want {
			b.Fatalf("%d ioc.match events, want %d", got, want)
		}
		iocHits = len(hits)
		evs := float64(b.N * api.MaxEventBatch)
		b.ReportMetric(evs/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(cpu)/float64(time.Microsecond)/evs, "cpu-µs/event")
		b.ReportMetric(float64(ns)/1e3/evs, "loadgen-cpu-µs/event")
	})
	b.Run("store", func(b *testing.B) {
		round++
		id := fmt.Sprintf("bench-store-%d", round)
		batches := benchBatches(b, id, b.N)
		now := time.Now()
		b.ResetTimer()
		cpu0 := processCPU()
		for _, recs := range batches {
			rows := make([]store.Event, len(recs))
			for i, r := range recs {
				rows[i] = store.Event{DeviceID: id, Seq: r.Seq, Source: store.EventFromDevice, Type: events.TypeNetConnection,
					SeverityID: 1, DeviceTime: now, ServerTime: now, PrevHash: r.PrevHash, Hash: r.Hash, Data: r.Event}
			}
			err := ts.Store().IngestEvents(context.Background(), id, recs[0].Seq, recs[len(recs)-1].Seq, now,
				func(h store.EventHead, _ map[uint64]string) (store.EventIngest, error) {
					return store.EventIngest{Insert: rows, Head: store.EventHead{LastSeq: rows[len(rows)-1].Seq, LastHash: rows[len(rows)-1].Hash}}, nil
				})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*api.MaxEventBatch)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N*api.MaxEventBatch), "cpu-µs/event")
	})
}

// loadgenEnv names the plan file of a load generator process.
const loadgenEnv = "BULWARK_BENCH_LOADGEN"

// loadgenPlan is what a load generator sends: each device's bodies in
// order, over its own mutual-TLS HTTP/2 connection.
type loadgenPlan struct {
	URL     string
	CA      string
	Devices []loadgenDevice
}

type loadgenDevice struct {
	Cert, Key []byte // DER certificate, PKCS #8 key
	Bodies    []string
}

// runLoadgen loads the bodies of a plan, prints "ready", waits for a
// line on stdin, sends every device's batches (devices at once, each
// device's in order), checks that each batch was stored in full, and
// prints "done" with the CPU nanoseconds it used meanwhile.
func runLoadgen(planFile string) error {
	pj, err := os.ReadFile(planFile)
	if err != nil {
		return err
	}
	var plan loadgenPlan
	if err := json.Unmarshal(pj, &plan); err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(plan.CA))
	type dev struct {
		hc     *http.Client
		bodies [][]byte
	}
	devs := make([]dev, len(plan.Devices))
	for i, pd := range plan.Devices {
		key, err := x509.ParsePKCS8PrivateKey(pd.Key)
		if err != nil {
			return err
		}
		cert := tls.Certificate{Certificate: [][]byte{pd.Cert}, PrivateKey: key}
		devs[i].hc = &http.Client{Timeout: time.Minute, Transport: &http.Transport{ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}}}
		for _, f := range pd.Bodies {
			body, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			devs[i].bodies = append(devs[i].bodies, body)
		}
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	cpu0 := processCPU()
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i := range devs {
		wg.Go(func() {
			for k, body := range devs[i].bodies {
				req, _ := http.NewRequest(http.MethodPost, plan.URL+api.PathEvents, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := devs[i].hc.Do(req)
				if err != nil {
					errs[i] = err
					return
				}
				data, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r api.EventBatchResponse
				if err == nil {
					err = json.Unmarshal(data, &r)
				}
				if err != nil || resp.StatusCode != http.StatusOK || r.Stored != api.MaxEventBatch {
					errs[i] = fmt.Errorf("device %d batch %d: %d %s %v", i, k, resp.StatusCode, data, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("done %d\n", processCPU()-cpu0)
	return nil
}
