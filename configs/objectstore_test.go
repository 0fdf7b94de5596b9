package configs

import (
	"strings"
	"testing"
)

func TestObjectStoreSettings(t *testing.T) {
	c, err := Parse([]byte("recordings:\n  object_store: {endpoint: \"127.0.0.1:8333\", bucket: rec-1, access_key: ak, secret_key: sk, prefix: nodes/}\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Recordings.ObjectStore
	if !o.Enabled() || o.Bucket != "rec-1" || o.Uploads != 4 || o.PartSizeMB != 16 || o.Prefix != "nodes/" {
		t.Fatalf("%+v", o)
	}
	if d, err := Parse([]byte("recordings: {workers: 2}\n")); err != nil {
		t.Fatal(err)
	} else if d.Recordings.ObjectStore.Enabled() {
		t.Fatalf("an object store by default: %+v", d.Recordings.ObjectStore)
	}
	t.Setenv("TRACKLINE_OBJECT_SECRET_KEY", "")
	const ok = "endpoint: s3.example.com, bucket: rec, access_key: ak, secret_key: sk"
	for _, tc := range []struct{ yaml, want string }{
		{"{bucket: rec}", "recordings.object_store.endpoint: is required"},
		{"{endpoint: \"https://s3.example.com\", bucket: rec, access_key: a, secret_key: s}", "recordings.object_store.endpoint: must be host or host:port"},
		{"{endpoint: \"s3:99999\", bucket: rec, access_key: a, secret_key: s}", "recordings.object_store.endpoint: has an invalid port"},
		{"{endpoint: s3, bucket: Rec_1, access_key: a, secret_key: s}", "recordings.object_store.bucket: must be an S3 bucket name"},
		{"{endpoint: s3, bucket: -rec, access_key: a, secret_key: s}", "recordings.object_store.bucket:"},
		{"{endpoint: s3, access_key: a, secret_key: s}", "recordings.object_store.bucket:"},
		{"{endpoint: s3, bucket: rec, secret_key: s}", "recordings.object_store.access_key: is required"},
		{"{endpoint: s3, bucket: rec, access_key: a}", "recordings.object_store.secret_key: is required"},
		{"{endpoint: s3, bucket: rec, access_key: a, secret_key: s, secret_key_file: /f}", "recordings.object_store.secret_key_file: set secret_key or"},
		{"{" + ok + ", prefix: /abs}", "recordings.object_store.prefix:"},
		{"{" + ok + ", prefix: a/../b}", "recordings.object_store.prefix:"},
		{"{" + ok + ", uploads: 100}", "recordings.object_store.uploads: must be between 1 and 64"},
		{"{" + ok + ", part_size_mb: 4}", "recordings.object_store.part_size_mb: must be between 5 and 512"},
	} {
		_, err := Parse([]byte("recordings:\n  object_store: " + tc.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	t.Setenv("TRACKLINE_OBJECT_SECRET_KEY", "from-env")
	if _, err := Parse([]byte("recordings:\n  object_store: {endpoint: s3, bucket: rec, access_key: a}\n")); err != nil {
		t.Errorf("secret key from the environment: %v", err)
	}
}
