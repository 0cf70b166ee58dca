package health

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{Active: &ActiveConfig{}, Outlier: &OutlierConfig{}}).Validate(); err != nil {
		t.Errorf("Validate() of defaults = %v, want nil", err)
	}
	err := (Config{Active: &ActiveConfig{Interval: -time.Second}}).Validate()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "active.interval") {
		t.Errorf("Validate() = %v, want an ErrInvalidConfig naming active.interval", err)
	}
	err = (Config{Outlier: &OutlierConfig{ReadmitAfterProbes: 2}}).Validate()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "readmit_after_probes") {
		t.Errorf("Validate() = %v, want an ErrInvalidConfig naming readmit_after_probes", err)
	}
}
