package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
)

// bench's output files are created before the run, so that a path that
// cannot be written is found at once and not after the load, with its
// results lost.

// A benchOutput is a file written at the end of the run. It goes to a
// temporary file beside its name, made up front, and is renamed into
// place once written.
type benchOutput struct {
	flag, name string
	tmp        *os.File
}

// createOutput makes the temporary file of --flag name.
func createOutput(flag, name string) (*benchOutput, error) {
	if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		return nil, errors.New(explainOutput(flag, name, syscall.EISDIR))
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return nil, errors.New(explainOutput(flag, name, err))
	}
	return &benchOutput{flag: flag, name: name, tmp: f}, nil
}

// commit writes the file with write and puts it in place.
func (o *benchOutput) commit(write func(io.Writer) error) error {
	err := write(o.tmp)
	if cerr := o.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(o.tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(o.tmp.Name(), o.name)
	}
	if err != nil {
		os.Remove(o.tmp.Name())
		return errors.New(explainOutput(o.flag, o.name, err))
	}
	return nil
}

// discard removes the temporary file.
func (o *benchOutput) discard() {
	o.tmp.Close()
	os.Remove(o.tmp.Name())
}

// startProfile starts a CPU profile into name ("" none) and returns the
// function that ends it.
func startProfile(name string) (stop func(), err error) {
	if name == "" {
		return func() {}, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, errors.New(explainOutput("--cpuprofile", name, err))
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start --cpuprofile: %v", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// explainOutput says in plain words why the file of --flag cannot be
// written.
func explainOutput(flag, name string, err error) string {
	dir := filepath.Dir(name)
	errno, errName := errnoOf(err)
	why := err.Error()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "no directory " + dir
	case errno == syscall.ENOTDIR:
		why = "a part of " + dir + " is not a directory (ENOTDIR)"
	case errno == syscall.EISDIR:
		why = name + " is a directory (EISDIR)"
	case errno == syscall.EACCES || errno == syscall.EPERM:
		why = "permission denied in " + dir + " (" + errName + ")"
	case errno == syscall.EROFS:
		why = dir + " is on a read-only file system (EROFS)"
	case errno == syscall.ENOSPC:
		why = "no space left on the device (ENOSPC)"
	case errName != "":
		why = fmt.Sprintf("%v (%s)", errno, errName)
	}
	return fmt.Sprintf("cannot write %s %s: %s", flag, name, why)
}
