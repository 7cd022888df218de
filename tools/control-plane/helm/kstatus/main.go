// Command kstatus prints how sigs.k8s.io/cli-utils' kstatus library (the health reading Flux
// uses) judges each object read from standard input: one JSON object, or a List such as
// `kubectl get -o json` prints. One line per object: "NAME STATUS MESSAGE".
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var obj map[string]interface{}
	// apimachinery's decoder keeps whole numbers as int64, as unstructured objects expect.
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		fail(fmt.Errorf("standard input is not a JSON object: %w", err))
	}
	items := []map[string]interface{}{obj}
	if list, ok := obj["items"].([]interface{}); ok {
		items = items[:0]
		for _, item := range list {
			if m, ok := item.(map[string]interface{}); ok {
				items = append(items, m)
			}
		}
	}
	for _, item := range items {
		u := &unstructured.Unstructured{Object: item}
		result, err := status.Compute(u)
		if err != nil {
			fail(fmt.Errorf("%s: %w", u.GetName(), err))
		}
		fmt.Printf("%s %s %s\n", u.GetName(), result.Status, result.Message)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
