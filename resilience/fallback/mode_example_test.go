package fallback_test

import (
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience/fallback"
)

func ExampleModes() {
	// A fake clock, so that the example runs without waiting.
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	modes, err := fallback.NewModes(fallback.ModesConfig{
		DegradedAt:   0.5, // left below 0.4 (Hysteresis 0.1)
		EmergencyAt:  0.8, // left below 0.7
		EnterAfter:   5 * time.Second,
		RecoverAfter: 30 * time.Second,
		Now:          func() time.Time { return now },
		OnChange: func(from, to fallback.Mode, reason string) {
			fmt.Printf("%s %v -> %v: %s\n", now.Format("15:04:05"), from, to, reason)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The owner observes the pressure every second, e.g. the larger of a
	// cluster's unhealthy share and its error rate.
	observe := func(pressure float64, seconds int) {
		for range seconds {
			modes.Observe(pressure)
			now = now.Add(time.Second)
		}
	}
	observe(0.3, 10)  // calm
	observe(0.62, 10) // half the cluster is down
	observe(0.9, 10)  // then most of it
	observe(0.45, 60) // recovering: in the band, holds degraded
	observe(0.1, 60)  // recovered

	if err := modes.Set(fallback.Emergency, "incident 42"); err != nil {
		fmt.Println(err)
		return
	}
	observe(0, 10) // ignored while pinned
	fmt.Println("mode:", modes.Mode(), "pinned:", modes.Pinned(), "switches:", modes.Switches())
	// Output:
	// 12:00:15 normal -> degraded: pressure 0.62 >= 0.5 for 5s
	// 12:00:25 degraded -> emergency: pressure 0.90 >= 0.8 for 5s
	// 12:01:00 emergency -> degraded: pressure 0.45 < 0.7 for 30s
	// 12:02:00 degraded -> normal: pressure 0.10 < 0.4 for 30s
	// 12:02:30 normal -> emergency: set by admin: incident 42
	// mode: emergency pinned: true switches: 5
}

func ExampleParseMode() {
	m, err := fallback.ParseMode("degraded")
	fmt.Println(m, err, m >= fallback.Degraded)
	_, err = fallback.ParseMode("panic")
	fmt.Println(err)
	// Output:
	// degraded <nil> true
	// fallback: unknown mode "panic", want normal, degraded or emergency
}
