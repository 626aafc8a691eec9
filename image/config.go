package image

import (
	"encoding/json"
	"time"
)

// ConfigFile is what the store reads of an image's config blob (the OCI
// image config, application/vnd.oci.image.config.v1+json, or docker's).
type ConfigFile struct {
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Variant      string    `json:"variant,omitempty"`
	Created      time.Time `json:"created"`
	Config       Config    `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// Config is the run configuration of an image (its config's "config").
type Config struct {
	User         string              `json:"User,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
}

// ParseConfig reads an image config blob.
func ParseConfig(b []byte) (*ConfigFile, error) {
	cf := &ConfigFile{}
	if err := json.Unmarshal(b, cf); err != nil {
		return nil, newErr(ErrCorrupt, "image config: %w", err)
	}
	return cf, nil
}
