package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs
// cgo).
const clockTick = 10 * time.Millisecond

// processCPU is the user plus system CPU time pid has used, all its threads
// together, with, if children, that of the processes whose parent it is
// (nginx's workers); false if /proc cannot tell.
func processCPU(pid int, children bool) (time.Duration, bool) {
	_, ticks, ok := procStat(strconv.Itoa(pid))
	if !ok {
		return 0, false
	}
	if children {
		dirs, err := filepath.Glob("/proc/[0-9]*")
		if err != nil {
			return 0, false
		}
		for _, d := range dirs {
			if p, t, ok := procStat(filepath.Base(d)); ok && p == pid {
				ticks += t
			}
		}
	}
	return time.Duration(ticks) * clockTick, true
}

// procStat reads the parent pid and utime+stime, in clock ticks, from
// /proc/PID/stat (proc(5)); the fields are counted after the command name,
// which is in parentheses and may hold spaces.
func procStat(pid string) (ppid int, ticks int64, ok bool) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return ppid, utime + stime, true
}
