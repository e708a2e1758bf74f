package xdsgen

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// UnmarshalJSON decodes what MarshalJSON encodes (golden files, /debug/xds), so
// that tests can serve goldens to real xDS clients.
func (r *Resources) UnmarshalJSON(data []byte) error {
	var d struct {
		Listeners, Routes, Clusters, Endpoints, Secrets []json.RawMessage
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return err
	}
	var err error
	if r.Listeners, err = decodeAll(r.Listeners, d.Listeners); err != nil {
		return err
	}
	if r.Routes, err = decodeAll(r.Routes, d.Routes); err != nil {
		return err
	}
	if r.Clusters, err = decodeAll(r.Clusters, d.Clusters); err != nil {
		return err
	}
	if r.Endpoints, err = decodeAll(r.Endpoints, d.Endpoints); err != nil {
		return err
	}
	r.Secrets, err = decodeAll(r.Secrets, d.Secrets)
	return err
}

// decodeAll decodes protojson messages of out's element type, appended to out[:0].
func decodeAll[M proto.Message](out []M, raws []json.RawMessage) ([]M, error) {
	out = out[:0]
	for _, raw := range raws {
		var zero M
		m := zero.ProtoReflect().Type().New().Interface().(M)
		if err := protojson.Unmarshal(raw, m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", proto.MessageName(m), err)
		}
		out = append(out, m)
	}
	return out, nil
}
