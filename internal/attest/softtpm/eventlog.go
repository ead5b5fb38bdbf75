package softtpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"unicode/utf16"
)

// TCG PC Client event types used by the event-log writer.
const (
	EvPostCode                   uint32 = 0x00000001
	EvNoAction                   uint32 = 0x00000003
	EvSeparator                  uint32 = 0x00000004
	EvAction                     uint32 = 0x00000005
	EvSCRTMContents              uint32 = 0x00000007
	EvSCRTMVersion               uint32 = 0x00000008
	EvCPUMicrocode               uint32 = 0x00000009
	EvPlatformConfigFlags        uint32 = 0x0000000A
	EvIPL                        uint32 = 0x0000000D
	EvEFIVariableDriverConfig    uint32 = 0x80000001
	EvEFIVariableBoot            uint32 = 0x80000002
	EvEFIBootServicesApplication uint32 = 0x80000003
	EvEFIBootServicesDriver      uint32 = 0x80000004
	EvEFIGPTEvent                uint32 = 0x80000006
	EvEFIAction                  uint32 = 0x80000007
	EvEFIPlatformFirmwareBlob    uint32 = 0x80000008
	EvEFIHandoffTables           uint32 = 0x80000009
	EvEFIVariableAuthority       uint32 = 0x800000E0
)

// Event is one measured-boot event: the SHA-256 Digest extended into PCR,
// and the event data that explains it.
type Event struct {
	PCR    int
	Type   uint32
	Digest [32]byte
	Data   []byte
}

// EventLog writes a TCG PC Client measured-boot log in the crypto-agile
// format with a SHA-256 bank only, as UEFI firmware writes it to
// binary_bios_measurements: a Spec ID event (SHA-1 format, EV_NO_ACTION)
// followed by TCG_PCR_EVENT2 records.
//
// Events is exported so that tests can alter the log after the fact; the
// zero EventLog is an empty log. An EventLog is not safe for concurrent
// use.
type EventLog struct {
	Events []Event
}

// Add appends an event whose digest is SHA-256 of data (as firmware
// measures variables, separators and strings) and returns the digest to
// extend into PCR pcr.
func (l *EventLog) Add(pcr int, typ uint32, data []byte) [32]byte {
	d := sha256.Sum256(data)
	l.AddDigest(pcr, typ, d, data)
	return d
}

// AddDigest appends an event whose digest is not a hash of its data (as
// for an image, where the data is a load record and the digest the
// Authenticode hash of the image).
func (l *EventLog) AddDigest(pcr int, typ uint32, digest [32]byte, data []byte) {
	l.Events = append(l.Events, Event{PCR: pcr, Type: typ, Digest: digest, Data: append([]byte(nil), data...)})
}

// Bytes encodes the log.
func (l *EventLog) Bytes() []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	// Spec ID event, TCG_PCClientPCREvent (SHA-1 format).
	var spec bytes.Buffer
	spec.WriteString("Spec ID Event03\x00")
	binary.Write(&spec, le, uint32(0)) // platform class
	spec.Write([]byte{0, 2, 0, 2})     // minor, major, errata, uintnSize
	binary.Write(&spec, le, uint32(1)) // one algorithm
	binary.Write(&spec, le, uint16(0x000B))
	binary.Write(&spec, le, uint16(32))
	spec.WriteByte(0) // vendor info size
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, EvNoAction)
	b.Write(make([]byte, 20))
	binary.Write(&b, le, uint32(spec.Len()))
	b.Write(spec.Bytes())
	for _, e := range l.Events {
		binary.Write(&b, le, uint32(e.PCR))
		binary.Write(&b, le, e.Type)
		binary.Write(&b, le, uint32(1))
		binary.Write(&b, le, uint16(0x000B))
		b.Write(e.Digest[:])
		binary.Write(&b, le, uint32(len(e.Data)))
		b.Write(e.Data)
	}
	return b.Bytes()
}

// Replay returns the SHA-256 PCR values the events extend from zero.
func (l *EventLog) Replay() [24][32]byte {
	var pcrs [24][32]byte
	for _, e := range l.Events {
		if e.PCR < 0 || e.PCR >= len(pcrs) || e.Type == EvNoAction {
			continue
		}
		pcrs[e.PCR] = extend(pcrs[e.PCR], e.Digest)
	}
	return pcrs
}

func extend(pcr, digest [32]byte) [32]byte {
	h := sha256.New()
	h.Write(pcr[:])
	h.Write(digest[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// EFI GUIDs of UEFI variables and signature lists, in their on-disk
// (mixed-endian) byte order.
var (
	// EFIGlobalVariable is 8be4df61-93ca-11d2-aa0d-00e098032b8c.
	EFIGlobalVariable = guid(0x8be4df61, 0x93ca, 0x11d2, [8]byte{0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c})
	// EFIImageSecurityDatabase is d719b2cb-3d3a-4596-a3bc-dad00e67656f.
	EFIImageSecurityDatabase = guid(0xd719b2cb, 0x3d3a, 0x4596, [8]byte{0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f})
	efiCertSHA256            = guid(0xc1c41626, 0x504c, 0x4092, [8]byte{0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28})
	efiCertX509              = guid(0xa5c059a1, 0x94e4, 0x4aa7, [8]byte{0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72})
)

func guid(d1 uint32, d2, d3 uint16, d4 [8]byte) [16]byte {
	var g [16]byte
	binary.LittleEndian.PutUint32(g[0:], d1)
	binary.LittleEndian.PutUint16(g[4:], d2)
	binary.LittleEndian.PutUint16(g[6:], d3)
	copy(g[8:], d4[:])
	return g
}

// UEFIVariable encodes a UEFI_VARIABLE_DATA record, the data of
// EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_BOOT and
// EV_EFI_VARIABLE_AUTHORITY events.
func UEFIVariable(vendor [16]byte, name string, data []byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	u := utf16.Encode([]rune(name))
	b.Write(vendor[:])
	binary.Write(&b, le, uint64(len(u)))
	binary.Write(&b, le, uint64(len(data)))
	binary.Write(&b, le, u)
	b.Write(data)
	return b.Bytes()
}

// SignatureListSHA256 encodes an EFI_SIGNATURE_LIST of SHA-256 hashes (as
// in dbx), owned by owner.
func SignatureListSHA256(owner [16]byte, hashes ...[32]byte) []byte {
	if len(hashes) == 0 {
		return nil
	}
	return signatureList(efiCertSHA256, owner, 32, func(b *bytes.Buffer) {
		for _, h := range hashes {
			b.Write(owner[:])
			b.Write(h[:])
		}
	}, len(hashes))
}

// SignatureListX509 encodes an EFI_SIGNATURE_LIST holding one X.509
// certificate (DER), owned by owner.
func SignatureListX509(owner [16]byte, certDER []byte) []byte {
	return signatureList(efiCertX509, owner, len(certDER), func(b *bytes.Buffer) {
		b.Write(owner[:])
		b.Write(certDER)
	}, 1)
}

func signatureList(typ, owner [16]byte, dataSize int, body func(*bytes.Buffer), n int) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	sigSize := 16 + dataSize
	b.Write(typ[:])
	binary.Write(&b, le, uint32(28+n*sigSize))
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, uint32(sigSize))
	body(&b)
	return b.Bytes()
}

// SignatureData encodes an EFI_SIGNATURE_DATA holding certDER, the data
// of an EV_EFI_VARIABLE_AUTHORITY event.
func SignatureData(owner [16]byte, certDER []byte) []byte {
	return append(owner[:], certDER...)
}
