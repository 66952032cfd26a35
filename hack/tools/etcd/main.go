// Command etcd is etcd's own server main, wrapped in a module so it can be
// built from the Go module proxy (etcd's go.mod uses replace directives, so a
// plain `go install` fails). Dev/test infrastructure only.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
