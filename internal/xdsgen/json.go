package xdsgen

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// MarshalJSON encodes the resources as one JSON object with the keys listeners,
// routes, clusters, endpoints and (when there are any) secrets, each resource in protojson. The output is stable:
// the same resources always give the same bytes, so it serves golden files and debug
// endpoints.
func (r *Resources) MarshalJSON() ([]byte, error) {
	type doc struct {
		Listeners []json.RawMessage `json:"listeners"`
		Routes    []json.RawMessage `json:"routes"`
		Clusters  []json.RawMessage `json:"clusters"`
		Endpoints []json.RawMessage `json:"endpoints"`
		Secrets   []json.RawMessage `json:"secrets,omitempty"`
	}
	var d doc
	var err error
	if d.Listeners, err = rawAll(r.Listeners); err != nil {
		return nil, err
	}
	if d.Routes, err = rawAll(r.Routes); err != nil {
		return nil, err
	}
	if d.Clusters, err = rawAll(r.Clusters); err != nil {
		return nil, err
	}
	if d.Endpoints, err = rawAll(r.Endpoints); err != nil {
		return nil, err
	}
	if len(r.Secrets) > 0 {
		if d.Secrets, err = rawAll(r.Secrets); err != nil {
			return nil, err
		}
	}
	return json.Marshal(d)
}

func rawAll[M proto.Message](msgs []M) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		// protojson varies its whitespace on purpose; json.Marshal compacts raw
		// messages, which makes the result stable.
		b, err := protojson.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", proto.MessageName(m), err)
		}
		out = append(out, b)
	}
	return out, nil
}
