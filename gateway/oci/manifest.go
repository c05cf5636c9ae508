package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"strings"
	"time"

	"github.com/mlgate/mlgate/gateway/modelversion"
	"github.com/mlgate/mlgate/metadata"
)

// Media types and annotation keys of the OCI image spec and of the CNCF ModelPack model spec
// (github.com/modelpack/model-spec, specs-go/v1).
const (
	MediaTypeManifest   = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeIndex      = "application/vnd.oci.image.index.v1+json"
	ArtifactTypeModel   = "application/vnd.cncf.model.manifest.v1+json"
	MediaTypeConfig     = "application/vnd.cncf.model.config.v1+json"
	MediaWeightRaw      = "application/vnd.cncf.model.weight.v1.raw"
	MediaWeightConfig   = "application/vnd.cncf.model.weight.config.v1.raw"
	MediaDocRaw         = "application/vnd.cncf.model.doc.v1.raw"
	MediaCodeRaw        = "application/vnd.cncf.model.code.v1.raw"
	MediaDatasetRaw     = "application/vnd.cncf.model.dataset.v1.raw"
	AnnotationFilepath  = "org.cncf.model.filepath"
	AnnotationUntested  = "org.cncf.model.file.mediatype.untested"
	AnnotationTitle     = "org.opencontainers.image.title"
	AnnotationCreated   = "org.opencontainers.image.created"
	AnnotationVersion   = "org.opencontainers.image.version"
	digestAlgorithmSHA  = "sha256:"
	modelFSTypeLayers   = "layers"
	configFormatUnknown = ""
)

// descriptor is an OCI content descriptor. encoding/json writes map keys sorted, so annotations
// encode the same way every time.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// modelConfig is the ModelPack config (application/vnd.cncf.model.config.v1+json). Its schema admits
// no other property, so the files' paths live in the layers' annotations, and their digests here.
type modelConfig struct {
	Descriptor struct {
		CreatedAt *time.Time `json:"createdAt,omitempty"`
		Name      string     `json:"name,omitempty"`
		Version   string     `json:"version,omitempty"`
	} `json:"descriptor"`
	ModelFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diffIds"`
	} `json:"modelfs"`
	Config struct {
		Format string `json:"format,omitempty"`
	} `json:"config"`
}

// Built is a version's manifest and config, encoded, with their digests.
type Built struct {
	Manifest, Config             []byte
	ManifestDigest, ConfigDigest string
	// Files are the version's files, one per layer, in layer order.
	Files []modelversion.File
}

// Build makes the ModelPack manifest of one version of a model from its files (in path order, as
// modelversion.Files lists them). It reads only what never changes once written: the model's name,
// the version's semver and creation time, and each file's path, size and sha256; never tags, aliases,
// descriptions or the time of the request. So every request, on every replica, gets the same bytes and
// digest until the file list changes. Each file is one raw layer whose digest is the file's sha256:
// the layer blob is the stored file itself.
func Build(model *metadata.Model, v *metadata.Version, files []modelversion.File) (*Built, error) {
	var cfg modelConfig
	created := v.CreatedAt.UTC()
	cfg.Descriptor.CreatedAt = &created
	cfg.Descriptor.Name = model.Name
	cfg.Descriptor.Version = v.Semver
	cfg.ModelFS.Type = modelFSTypeLayers
	cfg.ModelFS.DiffIDs = make([]string, 0, len(files))
	layers := make([]descriptor, 0, len(files))
	for _, f := range files {
		d := digestAlgorithmSHA + f.SHA256
		cfg.ModelFS.DiffIDs = append(cfg.ModelFS.DiffIDs, d)
		mt, tested := LayerMediaType(f.Path)
		ann := map[string]string{AnnotationFilepath: f.Path, AnnotationTitle: f.Path}
		if !tested {
			ann[AnnotationUntested] = "true"
		}
		layers = append(layers, descriptor{MediaType: mt, Digest: d, Size: f.Size, Annotations: ann})
	}
	cfg.Config.Format = weightFormat(files)
	cfgJSON, err := json.Marshal(&cfg)
	if err != nil {
		return nil, err
	}
	m := manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		ArtifactType:  ArtifactTypeModel,
		Config:        descriptor{MediaType: MediaTypeConfig, Digest: digestOf(cfgJSON), Size: int64(len(cfgJSON))},
		Layers:        layers,
		Annotations: map[string]string{
			AnnotationCreated: created.Format(time.RFC3339Nano),
			AnnotationVersion: v.Semver,
		},
	}
	mJSON, err := json.Marshal(&m)
	if err != nil {
		return nil, err
	}
	return &Built{Manifest: mJSON, Config: cfgJSON, ManifestDigest: digestOf(mJSON), ConfigDigest: m.Config.Digest, Files: files}, nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return digestAlgorithmSHA + hex.EncodeToString(sum[:])
}

// The layer media type rule, by file name (case-insensitive), first match wins:
//
//  1. documentation by name: README*, LICENSE*, LICENCE*, COPYING*, NOTICE*, CHANGELOG*, MODEL_CARD*,
//     or the extensions .md .rst .adoc .pdf .html → doc;
//  2. code by name: requirements*.txt, conda.yaml, python_env.yaml, Dockerfile, Makefile, or the
//     extensions .py .ipynb .sh .js .ts .go .r .jl .java .c .cc .cpp .h .cu → code;
//  3. weight configuration by name: MLmodel, config.json, generation_config.json, tokenizer.json,
//     tokenizer_config.json, special_tokens_map.json, preprocessor_config.json, vocab.*, merges.txt,
//     tokenizer.model, *.index.json (shard indexes), or the extensions .json .yaml .yml .toml .cfg .ini
//     → weight config;
//  4. datasets by extension: .csv .tsv .parquet .jsonl .arrow .feather .avro .tfrecord → dataset;
//  5. weights by extension: .safetensors .gguf .ggml .bin .pt .pth .ckpt .onnx .h5 .keras .pb .tflite
//     .pkl .pickle .joblib .ubj .xgb .cbm .mlmodel .npz .npy .msgpack .model .params .mar → weight;
//  6. anything else → weight, annotated org.cncf.model.file.mediatype.untested=true: a model version's
//     unrecognised files are most often serialised models (MLflow flavours name them freely).
//
// All are the spec's .raw types: each layer is the stored file, never an archive.

var (
	docPrefixes  = []string{"readme", "license", "licence", "copying", "notice", "changelog", "model_card", "modelcard"}
	docExts      = setOf(".md", ".rst", ".adoc", ".pdf", ".html", ".htm")
	codeNames    = setOf("conda.yaml", "python_env.yaml", "dockerfile", "makefile")
	codeExts     = setOf(".py", ".ipynb", ".sh", ".js", ".ts", ".go", ".r", ".jl", ".java", ".c", ".cc", ".cpp", ".h", ".cu")
	weightCfgs   = setOf("mlmodel", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "preprocessor_config.json", "merges.txt", "tokenizer.model")
	weightCfgExt = setOf(".json", ".yaml", ".yml", ".toml", ".cfg", ".ini")
	datasetExts  = setOf(".csv", ".tsv", ".parquet", ".jsonl", ".arrow", ".feather", ".avro", ".tfrecord")
	weightExts   = setOf(".safetensors", ".gguf", ".ggml", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".keras", ".pb", ".tflite",
		".pkl", ".pickle", ".joblib", ".ubj", ".xgb", ".cbm", ".mlmodel", ".npz", ".npy", ".msgpack", ".model", ".params", ".mar")
)

func setOf(items ...string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, s := range items {
		m[s] = true
	}
	return m
}

// LayerMediaType is the ModelPack layer media type of a file at filePath (see the rule above), and
// whether a rule recognised the name (false: the untested default).
func LayerMediaType(filePath string) (mediaType string, tested bool) {
	base := strings.ToLower(path.Base(filePath))
	ext := path.Ext(base)
	for _, p := range docPrefixes {
		if strings.HasPrefix(base, p) {
			return MediaDocRaw, true
		}
	}
	switch {
	case docExts[ext]:
		return MediaDocRaw, true
	case codeNames[base], strings.HasPrefix(base, "requirements") && ext == ".txt", codeExts[ext]:
		return MediaCodeRaw, true
	case weightCfgs[base], strings.HasPrefix(base, "vocab."), strings.HasSuffix(base, ".index.json"), weightCfgExt[ext]:
		return MediaWeightConfig, true
	case datasetExts[ext]:
		return MediaDatasetRaw, true
	case weightExts[ext]:
		return MediaWeightRaw, true
	}
	return MediaWeightRaw, false
}

// formatByExt names the config's format for weight files whose extension says it: Docker Model Runner
// reads a ModelPack model whose weights are .raw layers by this field.
var formatByExt = map[string]string{".gguf": "gguf", ".safetensors": "safetensors", ".onnx": "onnx"}

// weightFormat is the format of the version's weights when every file with a known format extension
// has the same one, else "".
func weightFormat(files []modelversion.File) string {
	format := configFormatUnknown
	for _, f := range files {
		ff, ok := formatByExt[strings.ToLower(path.Ext(f.Path))]
		if !ok {
			continue
		}
		if format != configFormatUnknown && format != ff {
			return configFormatUnknown
		}
		format = ff
	}
	return format
}
