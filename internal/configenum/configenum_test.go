package configenum

import "testing"

type color string

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    color
		wantErr string
	}{
		{"red", "red", ""},
		{"blue", "blue", ""},
		{"Red", "keep", `"Red" is not one of red, blue`},
		{"", "keep", `"" is not one of red, blue`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := color("keep")
			err := Unmarshal(&got, []byte(tt.in), "red", "blue")
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("value %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	if err := Check("color", color("red"), "red", "blue"); err != nil {
		t.Errorf("red: %v", err)
	}
	err := Check("color", color("green"), "red", "blue")
	if err == nil || err.Error() != `color: "green" is not one of red, blue` {
		t.Errorf("green: %v", err)
	}
}
