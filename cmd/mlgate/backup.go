package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/importer"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// backupLong is what backup and restore say in their help.
const backupLong = `A backup is the metadata database (mlgate.db) as of one moment; blobs are backed up separately, after
it (see the README). Under --auth, --url needs an instance token (--token or MLGATE_TOKEN).`

// defineBackup writes a consistent copy of the metadata database to --out: through a running server's
// admin API (--url), or from the data dir when no server holds it. The copy goes to a temporary file
// next to --out, is fsynced and checked (its sha256 against the server's, then its pages and schema),
// and only then renamed to --out: --out is never a half backup.
func defineBackup(fs *flag.FlagSet) runFunc {
	cfg := &config{}
	addDataDirFlag(fs, cfg)
	addConfigFlag(fs, cfg)
	var serverURL, token, out string
	addServerFlags(fs, &serverURL, &token)
	fs.StringVar(&out, "out", "", "file to write the backup to (required); replaced only by a whole, verified copy")
	return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
		return backup(ctx, cfg, fs, serverURL, token, out, stdout, stderr)
	}
}

func backup(ctx context.Context, cfg *config, fs *flag.FlagSet, serverURL, token, out string, stdout, stderr io.Writer) error {
	if out == "" {
		return errors.New("backup: --out is required")
	}
	if serverURL != "" && explicitFlags(fs)["data-dir"] {
		return fmt.Errorf("backup: %w", errURLAndDataDir)
	}
	if serverURL == "" {
		if err := refusePostgres(cfg, fs); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	start := time.Now()
	sum := sha256.New()
	var n int64
	var source string
	if serverURL != "" {
		client, err := newAdminClient(serverURL, token)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		source = client.base
		n, err = backupFromServer(ctx, client, io.MultiWriter(tmp, sum), sum)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	} else {
		source = cfg.dbPath()
		if _, err := os.Stat(source); err != nil {
			return fmt.Errorf("backup: no mlgate database at %s (wrong --data-dir?): %w", source, err)
		}
		snap, err := boltstore.OpenSnapshot(source)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		n, err = snap.WriteTo(io.MultiWriter(tmp, sum))
		_ = snap.Close()
		if err != nil {
			return fmt.Errorf("backup: writing %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	copied := time.Since(start)
	checkStart := time.Now()
	// The sha256 proved the bytes are the server's; this proves they are a whole store of a known schema.
	// Indexes are checked at restore, where reading every record once is worth its time.
	info, err := boltstore.CheckBackup(ctx, tmp.Name(), false)
	if err != nil {
		return fmt.Errorf("backup: the copy received is not a sound store: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	done = true
	if err := syncDir(filepath.Dir(out)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backup of %s: %s (%d bytes, schema %d) in %s, checked in %s, sha256 %s → %s\n",
		source, importer.HumanBytes(n), n, info.Version, copied.Round(time.Millisecond), time.Since(checkStart).Round(time.Millisecond),
		hex.EncodeToString(sum.Sum(nil)), out)
	return nil
}

// backupFromServer streams GET /api/v4/admin/backup into w and checks that what arrived is what the
// server sent: as many bytes as its size header announced, and the sha256 of its trailer (which a
// copy that failed on the server's side lacks). sum is the hash w feeds.
func backupFromServer(ctx context.Context, c *adminClient, w io.Writer, sum hash.Hash) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, "/api/v4/admin/backup", nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	size, err := strconv.ParseInt(resp.Header.Get(gateway.BackupSizeHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the server sent no %s header: is it an mlgate server of this version?", gateway.BackupSizeHeader)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("receiving the backup after %d of %d bytes: %w", n, size, err)
	}
	if n != size {
		return n, fmt.Errorf("received %d bytes, the server announced %d", n, size)
	}
	want := resp.Trailer.Get(gateway.BackupSHA256Header)
	if want == "" {
		return n, errors.New("the server did not confirm the copy (no sha256 trailer): it failed on the server's side; see its log")
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return n, fmt.Errorf("sha256 of the bytes received %s, the server sent %s", got, want)
	}
	return n, nil
}

// defineRestore puts a backup in place as the metadata database of an empty data dir, after checking that
// it is a sound mlgate store of a schema this binary knows. It refuses a data dir that holds anything,
// so that it never mixes a backup with another store's blobs or replaces a live database.
func defineRestore(fs *flag.FlagSet) runFunc {
	cfg := &config{}
	addDataDirFlag(fs, cfg)
	addConfigFlag(fs, cfg)
	var from string
	fs.StringVar(&from, "from", "", "backup file written by mlgate backup (required)")
	return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
		if err := refusePostgres(cfg, fs); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return restore(ctx, cfg, from, stdout, stderr)
	}
}

// refusePostgres reads --config and returns errPostgresBackup when the configured metadata store is
// PostgreSQL (by the file or MLGATE_METADATA_DSN): backup and restore copy bbolt files only. A bad
// configuration is loadFile's or resolveMetadata's error (wrapping ErrConfig).
func refusePostgres(cfg *config, fs *flag.FlagSet) error {
	if err := cfg.loadFile(explicitFlags(fs)); err != nil {
		return err
	}
	mc, err := cfg.metadataConfig()
	if err != nil {
		return err
	}
	if mc.Type == metadataPostgres {
		return errPostgresBackup
	}
	return nil
}

func restore(ctx context.Context, cfg *config, from string, stdout, stderr io.Writer) error {
	if from == "" {
		return errors.New("restore: --from is required")
	}
	info, err := boltstore.CheckBackup(ctx, from, true)
	if err != nil {
		return fmt.Errorf("restore: %s is not a backup this mlgate can restore: %w", from, err)
	}
	entries, err := os.ReadDir(cfg.DataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	case err != nil:
		return fmt.Errorf("restore: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("restore: data dir %s is not empty (it holds %s%s): restore into an empty or new directory",
			cfg.DataDir, entries[0].Name(), map[bool]string{true: ", …", false: ""}[len(entries) > 1])
	}
	if err := copyFileSynced(from, cfg.dbPath()); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// Opening runs the migrations an older backup needs, now rather than at the next serve.
	store, err := boltstore.Open(cfg.dbPath())
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s (%s, schema %d) into %s\n"+
		"next: copy the blobs taken after this backup into %s (or point --config at their backend), then run\n"+
		"  mlgate fsck --data-dir %s\n"+
		"to check that every file's blob is present.\n",
		from, importer.HumanBytes(info.Size), info.Version, cfg.dbPath(), cfg.blobRoot(), cfg.DataDir)
	return nil
}

// copyFileSynced copies src to dst through a temporary name in dst's directory, fsyncs it and renames
// it, so that dst is whole or absent.
func copyFileSynced(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := io.Copy(tmp, in); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// syncDir fsyncs a directory, so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
