package main

import (
	"os"
	"strconv"
	"testing"
)

func TestProcStatOfSelf(t *testing.T) {
	ppid, _, ok := procStat(strconv.Itoa(os.Getpid()))
	if !ok || ppid != os.Getppid() {
		t.Errorf("procStat(self): ppid %d, ok %v; want %d, true", ppid, ok, os.Getppid())
	}
	if _, ok := processCPU(os.Getppid(), true); !ok {
		t.Error("processCPU(parent, with children) cannot tell")
	}
	if _, ok := processCPU(1<<30, false); ok {
		t.Error("processCPU of no process tells")
	}
}
