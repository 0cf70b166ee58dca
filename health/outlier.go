package health

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// runOutlier runs the interval work of outlier detection until Close.
func (m *Monitor) runOutlier() {
	defer m.wg.Done()
	t := time.NewTicker(m.outlier.Interval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.tick(m.now())
			m.flush()
		}
	}
}

// window is one endpoint's results in the last interval.
type window struct {
	st           *state
	total, fails uint64
}

// tick expires ejections, decays ejection multipliers and runs the
// rate-based detectors over the interval that just ended.
func (m *Monitor) tick(now time.Time) {
	o := m.outlier
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	// Address order makes ejections under MaxEjectionPercent reproducible.
	sts := make([]*state, 0, len(m.states))
	for _, st := range m.states {
		sts = append(sts, st)
	}
	slices.SortFunc(sts, func(a, b *state) int { return strings.Compare(a.addr, b.addr) })

	var judged []window
	for _, st := range sts {
		if st.ejected && !st.awaiting && !now.Before(st.ejectedUntil) {
			if m.active != nil {
				st.awaiting, st.expiredAt, st.readmitOK = true, now, 0
				st.addTransition(now, st.stateName(m), fmt.Sprintf("ejection time ran out; waiting for %s",
					plural(o.ReadmitAfterProbes, "passing probe", "passing probes")))
				select {
				case st.kick <- struct{}{}:
				default:
				}
			} else {
				m.readmit(st, "after the "+st.ejectedFor.String()+" ejection time ran out", now)
			}
		}
		// The multiplier drops by one for every BaseEjectionTime the
		// endpoint stays admitted, so a flapping endpoint's ejections grow
		// and a recovered one starts over.
		for !st.ejected && st.multiplier > 0 && now.Sub(st.decayFrom) >= o.BaseEjectionTime {
			st.multiplier--
			st.decayFrom = st.decayFrom.Add(o.BaseEjectionTime)
		}
		total, fails := st.total.Load(), st.fails.Load()
		w := window{st: st, total: total - st.winTotal, fails: fails - st.winFails}
		st.winTotal, st.winFails = total, fails
		if !st.ejected && w.total > 0 {
			judged = append(judged, w)
		}
	}
	m.successRate(judged, now)
	m.failurePercentage(judged, now)
}

// successRate ejects the endpoints whose success rate is below
// mean − StdevFactor×σ (population standard deviation) of the endpoints
// with at least RequestVolume results. m.mu must be held.
func (m *Monitor) successRate(judged []window, now time.Time) {
	sr := m.outlier.SuccessRate
	if sr.StdevFactor == 0 {
		return
	}
	var ws []window
	var sum float64
	for _, w := range judged {
		if w.total >= uint64(sr.RequestVolume) {
			ws = append(ws, w)
			sum += rate(w)
		}
	}
	if len(ws) < sr.MinimumHosts || len(ws) == 0 {
		return
	}
	mean := sum / float64(len(ws))
	var sq float64
	for _, w := range ws {
		d := rate(w) - mean
		sq += d * d
	}
	sd := math.Sqrt(sq / float64(len(ws)))
	threshold := mean - sr.StdevFactor*sd
	for _, w := range ws {
		if r := rate(w); r < threshold {
			why := fmt.Sprintf("success rate %.1f%% (%d of %d) below %.1f%% (mean %.1f%%, stdev %.1f%%, factor %g, %d endpoints)",
				100*r, w.total-w.fails, w.total, 100*threshold, 100*mean, 100*sd, sr.StdevFactor, len(ws))
			m.ejectLocked(w.st, DetectorSuccessRate, why, now)
		}
	}
}

func rate(w window) float64 { return float64(w.total-w.fails) / float64(w.total) }

// failurePercentage ejects the endpoints whose failures are at least
// Threshold of their results, among endpoints with at least RequestVolume
// results, when there are MinimumHosts of them. m.mu must be held.
func (m *Monitor) failurePercentage(judged []window, now time.Time) {
	fp := m.outlier.FailurePercentage
	if fp.Threshold == 0 {
		return
	}
	var ws []window
	for _, w := range judged {
		if w.total >= uint64(fp.RequestVolume) {
			ws = append(ws, w)
		}
	}
	if len(ws) < fp.MinimumHosts {
		return
	}
	for _, w := range ws {
		if f := float64(w.fails) / float64(w.total); f >= fp.Threshold {
			why := fmt.Sprintf("%.1f%% failures (%d of %d) in %v, threshold %g%%",
				100*f, w.fails, w.total, m.outlier.Interval, 100*fp.Threshold)
			m.ejectLocked(w.st, DetectorFailurePercentage, why, now)
		}
	}
}
